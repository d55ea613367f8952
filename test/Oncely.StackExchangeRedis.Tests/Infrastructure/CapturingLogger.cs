using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Oncely.StackExchangeRedis.Tests.Infrastructure;

/// <summary>Keeps every event logged to it, for assertions on event ids.</summary>
public sealed class CapturingLogger : ILogger
{
    public ConcurrentQueue<(EventId Id, LogLevel Level, string Message)> Events { get; } = new();

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        => Events.Enqueue((eventId, logLevel, formatter(state, exception)));
}
