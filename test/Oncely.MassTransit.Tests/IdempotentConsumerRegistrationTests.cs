using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Oncely.MassTransit.Testing;
using Oncely.MassTransit.Tests.Infrastructure;

namespace Oncely.MassTransit.Tests;

/// <summary>Registration and configuration, on MassTransit's in-memory transport (the broker's behaviours are proven on RabbitMQ).</summary>
public sealed class IdempotentConsumerRegistrationTests
{
    [Fact]
    public async Task UseIdempotentConsumers_WithoutAddIdempotentConsumers_ThrowsSayingWhatToCall()
    {
        var services = new ServiceCollection();
        services.AddMassTransit(bus => bus.UsingInMemory((context, cfg) => cfg.UseIdempotentConsumers(context)));
        await using var provider = services.BuildServiceProvider();

        var error = Assert.ThrowsAny<Exception>(() => provider.GetRequiredService<IBusControl>());

        Assert.Contains("AddIdempotentConsumers()", Flatten(error), StringComparison.Ordinal);
    }

    [Fact]
    public void AddIdempotentConsumers_InvalidOptions_RefusedWithWhatToChange()
    {
        var services = new ServiceCollection();
        services.AddIdempotentConsumers(o =>
        {
            o.KeyHeader = string.Empty;
            o.Lease = TimeSpan.Zero;
        });
        using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<IdempotentConsumerOptions>>().Value);

        Assert.Contains(error.Failures, f => f.Contains("KeyHeader", StringComparison.Ordinal));
        Assert.Contains(error.Failures, f => f.Contains("Lease must be positive", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Handler_OnOneEndpoint_RunsOncePerMessageIdUnderItsMessageType()
    {
        var store = new InMemoryIdempotencyStore();
        var runs = 0;
        var consumed = new ConsumedCounter();
        var bus = Bus.Factory.CreateUsingInMemory(cfg =>
        {
            cfg.UseMessageRetry(r => r.Immediate(5));
            cfg.ReceiveEndpoint("handled", e =>
            {
                e.UseIdempotentConsumers(store);
                e.Handler<Transfer>(_ =>
                {
                    Interlocked.Increment(ref runs);
                    return Task.CompletedTask;
                });
            });
        });
        bus.ConnectReceiveObserver(consumed);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await bus.StartAsync(timeout.Token);
        try
        {
            var id = Guid.NewGuid();
            var endpoint = await bus.GetSendEndpoint(new Uri("queue:handled"));
            await endpoint.Send(new Transfer("acc-1", 100), c => c.MessageId = id, timeout.Token);
            await endpoint.Send(new Transfer("acc-1", 100), c => c.MessageId = id, timeout.Token);
            await Eventually.HoldsAsync(() => consumed[id] == 2, "both deliveries are acknowledged", details: () => $"runs {runs}, consumed {consumed.Total}, faults {consumed.Faults}");

            Assert.Equal(1, runs);
            var record = await store.GetAsync(new IdempotencyRecordId(IdempotencyRecordId.AnonymousTenant, "handler:" + MessageUrn.ForTypeString<Transfer>(), id.ToString()), timeout.Token);
            Assert.Equal(IdempotencyRecordState.Completed, record?.State);
        }
        finally
        {
            await bus.StopAsync(timeout.Token);
        }
    }

    [Fact]
    public async Task UseIdempotentConsumers_OnBusAndEndpoint_GuardsOnceAndStillRunsOnce()
    {
        var store = new InMemoryIdempotencyStore();
        var runs = 0;
        var consumed = new ConsumedCounter();
        var bus = Bus.Factory.CreateUsingInMemory(cfg =>
        {
            cfg.UseIdempotentConsumers(store);
            cfg.ReceiveEndpoint("twice-guarded", e =>
            {
                e.UseIdempotentConsumers(store);
                e.Handler<Transfer>(_ =>
                {
                    Interlocked.Increment(ref runs);
                    return Task.CompletedTask;
                });
            });
        });
        bus.ConnectReceiveObserver(consumed);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await bus.StartAsync(timeout.Token);
        try
        {
            var id = Guid.NewGuid();
            var endpoint = await bus.GetSendEndpoint(new Uri("queue:twice-guarded"));
            await endpoint.Send(new Transfer("acc-1", 100), c => c.MessageId = id, timeout.Token);
            await endpoint.Send(new Transfer("acc-1", 100), c => c.MessageId = id, timeout.Token);
            await Eventually.HoldsAsync(() => consumed[id] >= 2, "both deliveries are acknowledged", details: () => consumed.Faults);

            Assert.Equal(1, runs);
            Assert.Equal(string.Empty, consumed.Faults);
        }
        finally
        {
            await bus.StopAsync(timeout.Token);
        }
    }

    [Fact]
    public void PayloadRedactor_Default_IsTheSharedCoreRedactor()
        => Assert.Equal(IdempotencyPayloadRedactor.Redact, new IdempotentConsumerOptions().PayloadRedactor);

    private static string Flatten(Exception error)
    {
        var text = new System.Text.StringBuilder();
        for (Exception? e = error; e is not null; e = e.InnerException)
        {
            text.AppendLine(e.Message);
        }

        return text.ToString();
    }
}
