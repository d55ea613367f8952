using System.Collections.Concurrent;
using MassTransit;

namespace Oncely.MassTransit.Tests.Infrastructure;

/// <summary>Counts, per message id, the deliveries a bus finished as consumed (acknowledged).</summary>
public sealed class ConsumedCounter : IReceiveObserver
{
    private readonly ConcurrentDictionary<Guid, int> _consumed = new();

    public int this[Guid messageId] => _consumed.GetValueOrDefault(messageId);

    public int Total => _consumed.Values.Sum();

    public Task PreReceive(ReceiveContext context) => Task.CompletedTask;

    public Task PostReceive(ReceiveContext context) => Task.CompletedTask;

    public Task PostConsume<T>(ConsumeContext<T> context, TimeSpan duration, string consumerType)
        where T : class
    {
        _consumed.AddOrUpdate(context.MessageId ?? Guid.Empty, 1, (_, n) => n + 1);
        return Task.CompletedTask;
    }

    public Task ConsumeFault<T>(ConsumeContext<T> context, TimeSpan duration, string consumerType, Exception exception)
        where T : class
    {
        _faults.Enqueue(exception.Message);
        return Task.CompletedTask;
    }

    public Task ReceiveFault(ReceiveContext context, Exception exception)
    {
        _faults.Enqueue(exception.Message);
        return Task.CompletedTask;
    }

    /// <summary>The faults seen, one a line (for the message of a failed wait).</summary>
    public string Faults => string.Join('\n', _faults);

    private readonly ConcurrentQueue<string> _faults = new();
}
