using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Oncely.MassTransit.Tests.Infrastructure;

/// <summary>Keeps every log entry's event id and text, so a test can wait for (and count) what the filter decided.</summary>
public sealed class LogCapture : ILoggerProvider
{
    private readonly ConcurrentQueue<(int EventId, string Text)> _entries = new();

    public int Count(int eventId) => _entries.Count(e => e.EventId == eventId);

    public IEnumerable<string> Texts(int eventId) => _entries.Where(e => e.EventId == eventId).Select(e => e.Text);

    /// <summary>Every entry, one a line: for the message of a failed wait.</summary>
    public override string ToString() => string.Join('\n', _entries.Select(e => $"[{e.EventId}] {e.Text}"));

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void Dispose()
    {
    }

    private sealed class Logger(LogCapture capture) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => capture._entries.Enqueue((eventId.Id, formatter(state, exception) + (exception is null ? string.Empty : $" ({exception.GetType().Name}: {exception.Message})")));
    }
}
