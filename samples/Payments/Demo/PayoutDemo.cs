using System.Collections.Concurrent;
using MassTransit;
using Payments.Ledger;
using Payments.Payouts;

namespace Payments.Demo;

/// <summary>
/// The demo's message row: payout messages delivered twice each (what at-least-once delivery does after a lost
/// acknowledgement or an outbox re-send), through the app's own bus, measured from the ledger like the HTTP rows.
/// </summary>
public static class PayoutDemo
{
    public const string Name = "7. payout message redelivered";
    public const int Payouts = 3;
    public const int Deliveries = 2;
    public const long Amount = 500;
    public const long ExpectedCharges = Payouts;
    public const long ExpectedMoved = Payouts * Amount;

    public static async Task<(ScenarioMeasure Measure, IReadOnlyList<string> Violations)> RunAsync(IServiceProvider services, string from, string to, CancellationToken cancellationToken)
    {
        var bus = services.GetRequiredService<IBus>();
        var delivered = new DeliveryCounter();
        using var observer = bus.ConnectReceiveObserver(delivered);
        var runsBefore = services.GetRequiredService<PayoutRuns>().Count;
        var endpoint = await bus.GetSendEndpoint(new Uri($"queue:{PayoutMessaging.Queue}"));
        for (var i = 0; i < Payouts; i++)
        {
            var messageId = NewId.NextGuid();
            for (var copy = 0; copy < Deliveries; copy++)
            {
                await endpoint.Send(
                    new PayoutRequested(from, to, Amount, "EUR", $"payout-{i}"),
                    context =>
                    {
                        context.MessageId = messageId;
                        context.Headers.Set(PayoutMessaging.TenantHeader, "tenant-a");
                    },
                    cancellationToken);
            }
        }

        while (delivered.Count < Payouts * Deliveries)
        {
            await Task.Delay(20, cancellationToken);
        }

        var ledger = services.GetRequiredService<LedgerRepository>();
        var made = (await ledger.PaymentsByReferenceAsync(cancellationToken)).Where(t => t.Reference.StartsWith("payout-", StringComparison.Ordinal)).ToList();
        var runs = services.GetRequiredService<PayoutRuns>().Count - runsBefore;
        var charges = made.Sum(t => t.Payments);
        var violations = made.Where(t => t.Payments != 1).Select(t => $"{Name}: '{t.Reference}' was paid out {t.Payments} times").ToList();
        if (made.Count != Payouts)
        {
            violations.Add($"{Name}: {Payouts - made.Count} payout(s) never made");
        }

        var answers = new Dictionary<string, int>(StringComparer.Ordinal) { ["ack"] = delivered.Count };
        return (new ScenarioMeasure(charges, made.Sum(t => t.Amount), Math.Max(0, charges - Payouts), answers, delivered.Count - runs, Noun: "payout"), violations);
    }

    /// <summary>Counts deliveries the bus finished as consumed (acknowledged), whether the consumer ran or the delivery was a replay.</summary>
    private sealed class DeliveryCounter : IReceiveObserver
    {
        private readonly ConcurrentDictionary<Guid, int> _seen = new();
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public Task PreReceive(ReceiveContext context) => Task.CompletedTask;

        public Task PostReceive(ReceiveContext context) => Task.CompletedTask;

        public Task PostConsume<T>(ConsumeContext<T> context, TimeSpan duration, string consumerType)
            where T : class
        {
            _seen.AddOrUpdate(context.MessageId ?? Guid.Empty, 1, (_, n) => n + 1);
            Interlocked.Increment(ref _count);
            return Task.CompletedTask;
        }

        public Task ConsumeFault<T>(ConsumeContext<T> context, TimeSpan duration, string consumerType, Exception exception)
            where T : class => Task.CompletedTask;

        public Task ReceiveFault(ReceiveContext context, Exception exception) => Task.CompletedTask;
    }
}
