using MassTransit;
using Oncely.MassTransit.Tests.Infrastructure;
using Oncely.Testing;

namespace Oncely.MassTransit.Tests;

/// <summary>A consumed message is traced like an idempotent HTTP request: one <c>oncely.request</c> span per delivery, tagged with its outcome.</summary>
public sealed class IdempotentConsumerTelemetryTests
{
    [Fact]
    public async Task Deliveries_EachGetARequestSpanWithItsOutcome_ConsumerFailureIsReleasedWithErrorType()
    {
        using var traces = new TraceCapture();
        var store = new InMemoryIdempotencyStore();
        var failOnce = 1;
        var consumed = new ConsumedCounter();
        var bus = Bus.Factory.CreateUsingInMemory(cfg =>
        {
            cfg.UseMessageRetry(r => r.Immediate(3));
            cfg.ReceiveEndpoint("traced-payouts", e =>
            {
                e.UseIdempotentConsumers(store);
                e.Handler<TracedPayout>(context => context.Message.Amount == 13 && Interlocked.Exchange(ref failOnce, 0) == 1
                    ? throw new InvalidOperationException("the bank timed out")
                    : Task.CompletedTask);
            });
        });
        bus.ConnectReceiveObserver(consumed);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await bus.StartAsync(timeout.Token);
        try
        {
            var twice = Guid.NewGuid();
            var failing = Guid.NewGuid();
            var endpoint = await bus.GetSendEndpoint(new Uri("queue:traced-payouts"));
            await endpoint.Send(new TracedPayout("acc-1", 100), c => c.MessageId = twice, timeout.Token);
            await Eventually.HoldsAsync(() => consumed[twice] == 1, "the first delivery is acknowledged");
            await endpoint.Send(new TracedPayout("acc-1", 100), c => c.MessageId = twice, timeout.Token);
            await endpoint.Send(new TracedPayout("acc-2", 13), c => c.MessageId = failing, timeout.Token);
            await Eventually.HoldsAsync(() => consumed[twice] == 2 && consumed[failing] == 1, "every delivery is acknowledged");
        }
        finally
        {
            await bus.StopAsync(timeout.Token);
        }

        var requests = traces.RequestsOf("handler:" + MessageUrn.ForTypeString<TracedPayout>() + "@traced-payouts");
        var outcomes = requests.Select(a => (string?)a.GetTagItem(IdempotencyDiagnostics.OutcomeTag)).Order(StringComparer.Ordinal);
        Assert.Equal(["executed", "executed", "released", "replayed"], outcomes);
        var released = Assert.Single(requests, a => Equals(a.GetTagItem(IdempotencyDiagnostics.OutcomeTag), "released"));
        Assert.Equal(typeof(InvalidOperationException).FullName, released.GetTagItem(IdempotencyDiagnostics.ErrorTypeTag));
        Assert.All(requests.Where(a => a != released), a => Assert.Null(a.GetTagItem(IdempotencyDiagnostics.ErrorTypeTag)));
        Assert.All(requests, a => Assert.NotEmpty(traces.ChildrenOf(a)));
    }

    [Fact]
    public async Task KeyReused_AuditWrite_GetsTheStoreCallSpanUnderTheDeliverysRequestSpan()
    {
        // Regression (issue 18): message audits were written past the executor, so they had no store-call span.
        using var traces = new TraceCapture();
        var store = new InMemoryIdempotencyStore();
        var consumed = new ConsumedCounter();
        var bus = Bus.Factory.CreateUsingInMemory(cfg =>
        {
            cfg.ReceiveEndpoint("audited-payouts", e =>
            {
                e.UseIdempotentConsumers(store);
                e.Handler<AuditedPayout>(_ => Task.CompletedTask);
            });
        });
        bus.ConnectReceiveObserver(consumed);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await bus.StartAsync(timeout.Token);
        try
        {
            var id = Guid.NewGuid();
            var endpoint = await bus.GetSendEndpoint(new Uri("queue:audited-payouts"));
            await endpoint.Send(new AuditedPayout("acc-1", 100), c => c.MessageId = id, timeout.Token);
            await Eventually.HoldsAsync(() => consumed[id] == 1, "the first delivery is acknowledged");
            await endpoint.Send(new AuditedPayout("acc-1", 999), c => c.MessageId = id, timeout.Token);
            await Eventually.HoldsAsync(() => RequestsOf(traces).Any(a => Equals(a.GetTagItem(IdempotencyDiagnostics.OutcomeTag), "key_reused")), "the reuse is refused");
        }
        finally
        {
            await bus.StopAsync(timeout.Token);
        }

        var requests = RequestsOf(traces);
        var refused = Assert.Single(requests, a => Equals(a.GetTagItem(IdempotencyDiagnostics.OutcomeTag), "key_reused"));
        var audit = Assert.Single(traces.ChildrenOf(refused), a => a.OperationName == IdempotencyDiagnostics.StoreActivityPrefix + "append_audit");
        Assert.Equal("append_audit", audit.GetTagItem(IdempotencyDiagnostics.StoreOperationTag));
        var entries = await store.ListAuditAsync(new KeyReuseAuditQuery(), CancellationToken.None);
        Assert.Single(entries.Entries);

        static IReadOnlyList<System.Diagnostics.Activity> RequestsOf(TraceCapture traces)
            => traces.RequestsOf("handler:" + MessageUrn.ForTypeString<AuditedPayout>() + "@audited-payouts");
    }
}

/// <summary>A message type of this test's own, so its operation (and so its spans) is no other test's.</summary>
public sealed record AuditedPayout(string Account, long Amount);

/// <summary>A message type of this test's own, so its operation (and so its spans) is no other test's.</summary>
public sealed record TracedPayout(string Account, long Amount);
