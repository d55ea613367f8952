using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
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
            var record = await store.GetAsync(new IdempotencyRecordId(IdempotencyRecordId.AnonymousTenant, "handler:" + MessageUrn.ForTypeString<Transfer>() + "@handled", id.ToString()), timeout.Token);
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
    public async Task BatchConsumer_BehindUseIdempotentConsumersOnTheBus_HostRefusesToStartNamingTheConsumerAndWhatToDo()
    {
        var builder = Host.CreateApplicationBuilder();
        var batches = new BatchLog();
        builder.Services.AddSingleton(batches);
        builder.Services.AddIdempotentConsumers();
        builder.Services.AddMassTransit(bus =>
        {
            bus.AddConsumer<TransferBatchConsumer>();
            bus.UsingInMemory((context, cfg) =>
            {
                cfg.UseIdempotentConsumers(context);
                cfg.ConfigureEndpoints(context);
            });
        });
        using var host = builder.Build();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        var error = await Assert.ThrowsAnyAsync<Exception>(() => host.StartAsync(timeout.Token));

        var text = Flatten(error);
        Assert.Contains(typeof(TransferBatchConsumer).FullName!, text, StringComparison.Ordinal);
        Assert.Contains("Batch<Transfer>", text, StringComparison.Ordinal);
        Assert.Contains("IConsumer<Transfer>", text, StringComparison.Ordinal);
        Assert.Equal(0, batches.Messages);
    }

    [Fact]
    public async Task BatchConsumer_FilterOnItsEndpointRefused_FilterOnlyOnTheOtherEndpointsStartsAndConsumesTheBatch()
    {
        var store = new InMemoryIdempotencyStore();
        var batches = new BatchLog();
        var refused = Assert.ThrowsAny<Exception>(() => Bus.Factory.CreateUsingInMemory(cfg => cfg.ReceiveEndpoint("batched", e =>
        {
            e.UseIdempotentConsumers(store);
            e.Consumer(() => new TransferBatchConsumer(batches));
        })));
        Assert.Contains(typeof(TransferBatchConsumer).FullName!, Flatten(refused), StringComparison.Ordinal);

        // What the refusal advises: the filter on the per-message consumers' endpoints only; the batch endpoint unguarded.
        var runs = 0;
        var bus = Bus.Factory.CreateUsingInMemory(cfg =>
        {
            cfg.ReceiveEndpoint("guarded", e =>
            {
                e.UseIdempotentConsumers(store);
                e.Handler<Transfer>(_ =>
                {
                    Interlocked.Increment(ref runs);
                    return Task.CompletedTask;
                });
            });
            cfg.ReceiveEndpoint("batched", e => e.Consumer(() => new TransferBatchConsumer(batches), c => c.Options<BatchOptions>(o => o.SetMessageLimit(2).SetTimeLimit(TimeSpan.FromMilliseconds(50)))));
        });
        var consumed = new ConsumedCounter();
        bus.ConnectReceiveObserver(consumed);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await bus.StartAsync(timeout.Token);
        try
        {
            var id = Guid.NewGuid();
            await (await bus.GetSendEndpoint(new Uri("queue:batched"))).Send(new Transfer("acc-1", 100), timeout.Token);
            await (await bus.GetSendEndpoint(new Uri("queue:batched"))).Send(new Transfer("acc-2", 200), timeout.Token);
            await (await bus.GetSendEndpoint(new Uri("queue:guarded"))).Send(new Transfer("acc-1", 100), c => c.MessageId = id, timeout.Token);
            await (await bus.GetSendEndpoint(new Uri("queue:guarded"))).Send(new Transfer("acc-1", 100), c => c.MessageId = id, timeout.Token);
            await Eventually.HoldsAsync(() => Volatile.Read(ref batches.Messages) == 2, "the batch consumer consumed both messages");
            await Eventually.HoldsAsync(() => consumed[id] == 2, "both deliveries to the guarded endpoint are acknowledged", details: () => consumed.Faults);
            var record = await store.GetAsync(new IdempotencyRecordId(IdempotencyRecordId.AnonymousTenant, "handler:" + MessageUrn.ForTypeString<Transfer>() + "@guarded", id.ToString()), timeout.Token);
            Assert.Equal(IdempotencyRecordState.Completed, record?.State);
        }
        finally
        {
            await bus.StopAsync(timeout.Token);
        }

        Assert.Equal(1, runs);
    }

    [Fact]
    public void AddIdempotentConsumers_WithAddIdempotency_RegistersOneStoreMaintenance()
    {
        var services = new ServiceCollection();
        services.AddIdempotency();
        services.AddIdempotentConsumers();
        services.AddIdempotentConsumers();

        Assert.Single(services, d => d.ServiceType == typeof(IHostedService) && d.ImplementationType == typeof(IdempotencyStoreMaintenance));
        Assert.Single(services, d => d.ServiceType == typeof(KeyReuseAuditor));
    }

    [Fact]
    public async Task ConfigureMaintenance_FromEitherTransport_OneSweeperPurgesOnTheSharedInterval()
    {
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 0, 0, 0, TimeSpan.Zero));
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<TimeProvider>(clock);
        builder.Services.AddIdempotentConsumers(o =>
        {
            o.Expiration = TimeSpan.FromMinutes(1);
            o.RenewLease = false;
        }).ConfigureMaintenance(o => o.PurgeInterval = TimeSpan.FromMinutes(2));
        builder.Services.AddIdempotency().ConfigureMaintenance(o => o.PurgeBatchSize = 7);
        using var host = builder.Build();
        var store = (InMemoryIdempotencyStore)host.Services.GetRequiredService<IIdempotencyStore>();
        await host.StartAsync();
        try
        {
            var shared = host.Services.GetRequiredService<IOptions<IdempotencyMaintenanceOptions>>().Value;
            Assert.Equal((TimeSpan.FromMinutes(2), 7), (shared.PurgeInterval, shared.PurgeBatchSize));
            var executor = host.Services.GetRequiredService<IdempotentConsumerServices>().Executor;
            await executor.BeginAsync(new IdempotencyRecordId("t", "op", "k"), new string('a', 64));
            Assert.Equal(1, store.Count);

            clock.Advance(TimeSpan.FromMinutes(2));
            await Eventually.HoldsAsync(() => store.Count == 0, "the one sweeper purges the expired record");
        }
        finally
        {
            await host.StopAsync();
        }
    }

    [Fact]
    public async Task Start_ConsumerMaxKeyLengthAboveTheStoresLimit_RefusedWithWhatToChange()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddIdempotentConsumers(o => o.MaxKeyLength = 4096).UseStore(_ => new LimitedStore(new InMemoryIdempotencyStore(), 1024));
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync());

        Assert.Contains("Oncely.MassTransit: MaxKeyLength is 4096", error.Message, StringComparison.Ordinal);
        Assert.Contains("Set MaxKeyLength to 1024 or less", error.Message, StringComparison.Ordinal);
    }

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

/// <summary>How many messages <see cref="TransferBatchConsumer"/> consumed, in batches.</summary>
public sealed class BatchLog
{
    public int Messages;
}

/// <summary>A batch consumer: receives several transfers in one call.</summary>
public sealed class TransferBatchConsumer(BatchLog log) : IConsumer<Batch<Transfer>>
{
    public Task Consume(ConsumeContext<Batch<Transfer>> context)
    {
        Interlocked.Add(ref log.Messages, context.Message.Length);
        return Task.CompletedTask;
    }
}
