using System.Collections.Concurrent;
using System.Data.Common;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Oncely.MassTransit.Testing;
using Oncely.Sqlite;

namespace Oncely.MassTransit.Tests.Infrastructure;

/// <summary>What the in-process consumer does, shared by every consumer instance of one test.</summary>
public sealed class Scenario(TransferLedger ledger)
{
    private int _running;
    private int _maxRunning;
    private int _throwBeforeCommit;
    private int _throwAfterCommit;

    public TransferLedger Ledger { get; } = ledger;

    /// <summary>When set, each run waits for it before writing anything.</summary>
    public TaskCompletionSource? Gate { get; set; }

    /// <summary>
    /// Two phases: the first run commits phase 1 (an effect row <c>phase-1</c>) with the recovery point <c>phase-1</c>, then
    /// fails; a later run resumes there and only applies phase 2. <see cref="ResumedFrom"/> keeps what each run resumed from.
    /// </summary>
    public bool TwoPhases { get; set; }

    public ConcurrentQueue<string> ResumedFrom { get; } = new();

    /// <summary>The first <paramref name="times"/> runs throw before their transaction commits.</summary>
    public void ThrowBeforeCommit(int times) => _throwBeforeCommit = times;

    /// <summary>The first <paramref name="times"/> runs commit the effect and the completion, then throw (as a failure between the commit and the acknowledgement).</summary>
    public void ThrowAfterCommit(int times) => _throwAfterCommit = times;

    public int MaxRunning => Volatile.Read(ref _maxRunning);

    internal int Enter()
    {
        var now = Interlocked.Increment(ref _running);
        int max;
        while (now > (max = Volatile.Read(ref _maxRunning)) && Interlocked.CompareExchange(ref _maxRunning, now, max) != max)
        {
        }

        return now;
    }

    internal void Leave() => Interlocked.Decrement(ref _running);

    internal bool TakeBeforeCommitFailure() => Interlocked.Decrement(ref _throwBeforeCommit) >= 0;

    internal bool TakeAfterCommitFailure() => Interlocked.Decrement(ref _throwAfterCommit) >= 0;
}

/// <summary>Applies a transfer: the effect row and the record's completion commit in one SQLite transaction.</summary>
public sealed class ScenarioConsumer(Scenario scenario) : IConsumer<Transfer>
{
    public async Task Consume(ConsumeContext<Transfer> context)
    {
        var key = context.GetIdempotencyExecution()?.Id.Key ?? throw new InvalidOperationException("The consumer runs without the idempotent filter.");
        scenario.Enter();
        try
        {
            await scenario.Ledger.RecordRunAsync(key);
            if (scenario.Gate is { } gate)
            {
                await gate.Task.WaitAsync(TimeSpan.FromSeconds(30));
            }

            var execution = context.GetIdempotencyExecution()!;
            if (scenario.TwoPhases)
            {
                scenario.ResumedFrom.Enqueue(execution.ResumedFrom ?? "start");
                if (execution.RecoveryPoint is null)
                {
                    await using var phase1 = await scenario.Ledger.OpenAsync();
                    await using var phase1Transaction = TransferLedger.BeginWrite(phase1);
                    await TransferLedger.InsertEffectAsync(phase1, phase1Transaction, key, context.Message with { Account = "phase-1" });
                    await execution.SetRecoveryPointInTransactionAsync(phase1Transaction, "phase-1");
                    await phase1Transaction.CommitAsync();
                    throw new InvalidOperationException("The consumer failed between its two phases.");
                }
            }

            await using var connection = await scenario.Ledger.OpenAsync();
            await using var transaction = TransferLedger.BeginWrite(connection);
            await TransferLedger.InsertEffectAsync(connection, transaction, key, context.Message);
            if (scenario.TakeBeforeCommitFailure())
            {
                throw new InvalidOperationException("The consumer failed before its commit.");
            }

            await context.CompleteIdempotencyInTransactionAsync(transaction);
            await transaction.CommitAsync();
            if (scenario.TakeAfterCommitFailure())
            {
                throw new InvalidOperationException("The consumer failed after its commit, before the acknowledgement.");
            }
        }
        finally
        {
            scenario.Leave();
        }
    }
}

/// <summary>One consumer instance: a bus of its own (its own connection) consuming the test's queue in the test's virtual host.</summary>
public sealed class ConsumerHost : IAsyncDisposable
{
    public const string Queue = "transfers";
    private readonly ServiceProvider _provider;

    private ConsumerHost(ServiceProvider provider, LogCapture log, string virtualHost)
    {
        _provider = provider;
        VirtualHost = virtualHost;
        Bus = provider.GetRequiredService<IBusControl>();
        Log = log;
        Bus.ConnectReceiveObserver(Consumed);
    }

    public IBusControl Bus { get; }

    public string VirtualHost { get; }

    /// <summary>Deliveries this instance acknowledged as consumed, per message id (replays included).</summary>
    public ConsumedCounter Consumed { get; } = new();

    public LogCapture Log { get; }

    public IIdempotencyStore Store => _provider.GetRequiredService<IIdempotencyStore>();

    /// <summary>
    /// Starts a consumer instance: retry outside (by default 100 tries, 100 ms apart, a rejection never retried), the
    /// idempotent filter inside, the SQLite store on the ledger's file.
    /// </summary>
    public static async Task<ConsumerHost> StartAsync(
        RabbitMqServer server,
        string virtualHost,
        Scenario scenario,
        Action<IdempotentConsumerOptions>? options = null,
        Func<IIdempotencyStore, IIdempotencyStore>? wrapStore = null,
        int concurrency = 4,
        Action<IRetryConfigurator>? retry = null,
        Action<IIdempotencyBuilder>? idempotencyBuilder = null)
    {
        var services = new ServiceCollection();
        var log = new LogCapture();
        services.AddLogging(logging => logging.AddProvider(log).SetMinimumLevel(LogLevel.Debug));
        services.AddSingleton(scenario);
        var idempotency = services.AddIdempotentConsumers(o =>
        {
            o.Lease = TimeSpan.FromSeconds(5);
            options?.Invoke(o);
        }).UseSqlite(scenario.Ledger.ConnectionString);
        idempotencyBuilder?.Invoke(idempotency);
        if (wrapStore is not null)
        {
            var inner = new ServiceCollection().AddIdempotentConsumers().UseSqlite(scenario.Ledger.ConnectionString).Services.BuildServiceProvider().GetRequiredService<IIdempotencyStore>();
            idempotency.UseStore(_ => wrapStore(inner));
        }

        services.AddMassTransit(bus =>
        {
            bus.AddConsumer<ScenarioConsumer>();
            bus.UsingRabbitMq((context, cfg) =>
            {
                cfg.Host(server.HostAddress(virtualHost), h =>
                {
                    h.Username(RabbitMqServer.User);
                    h.Password(RabbitMqServer.Password);
                });
                cfg.UseMessageRetry(retry ?? (r =>
                {
                    r.Ignore<IdempotentMessageRejectedException>();
                    r.Interval(100, TimeSpan.FromMilliseconds(100));
                }));
                cfg.UseIdempotentConsumers(context);
                cfg.ReceiveEndpoint(Queue, e =>
                {
                    e.PrefetchCount = concurrency;
                    e.ConcurrentMessageLimit = concurrency;
                    e.ConfigureConsumer<ScenarioConsumer>(context);
                });
            });
        });

        var host = new ConsumerHost(services.BuildServiceProvider(), log, virtualHost);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await host.Bus.StartAsync(timeout.Token);
        return host;
    }

    public async Task SendAsync(Guid messageId, Transfer transfer, Action<SendContext>? headers = null)
    {
        var endpoint = await Bus.GetSendEndpoint(new Uri($"queue:{Queue}"));
        await endpoint.Send(transfer, context =>
        {
            context.MessageId = messageId;
            headers?.Invoke(context);
        });
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await Bus.StopAsync(timeout.Token);
        await _provider.DisposeAsync();
    }
}
