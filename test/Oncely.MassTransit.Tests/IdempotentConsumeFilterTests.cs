using System.Collections.Concurrent;
using MassTransit;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Oncely.MassTransit.Testing;
using Oncely.MassTransit.Tests.Infrastructure;
using Oncely.Sqlite;

namespace Oncely.MassTransit.Tests;

/// <summary>
/// The idempotent consume filter on a real RabbitMQ broker, in-process consumer instances, the SQLite store on the same
/// file as the consumer's business table (transactional completion). Each test has a virtual host and a database of its own.
/// </summary>
[Collection(RabbitMqCollection.Name)]
public sealed class IdempotentConsumeFilterTests(RabbitMqFixture broker) : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("oncely-mt-").FullName;

    private RabbitMqServer Server => broker.Server;

    [Fact]
    public async Task Duplicate_AfterEffectCommitted_AcknowledgedWithoutRunning()
    {
        var (scenario, host) = await StartAsync();
        await using var _ = host;
        var id = Guid.NewGuid();

        await host.SendAsync(id, new Transfer("acc-1", 100));
        await Eventually.HoldsAsync(() => host.Consumed[id] == 1, "the first delivery is consumed");

        // A second send of the same message: a new envelope (new sent time, conversation id), same message id and payload.
        await host.SendAsync(id, new Transfer("acc-1", 100));
        await Eventually.HoldsAsync(() => host.Consumed[id] == 2, "the duplicate is acknowledged", details: host.Log.ToString);

        Assert.Equal(1, await scenario.Ledger.RunsAsync(id.ToString()));
        Assert.Equal(1, await scenario.Ledger.EffectsAsync(id.ToString()));
        Assert.Equal(1, host.Log.Count(IdempotencyEventIds.MessageReplayed));
        Assert.True(await Server.MessageCountAsync(host.VirtualHost, ConsumerHost.Queue + "_error") <= 0, "nothing went to the error queue");
        Assert.True(await Server.MessageCountAsync(host.VirtualHost, ConsumerHost.Queue + "_skipped") <= 0, "the duplicate counted as consumed, not skipped");
    }

    [Fact]
    public async Task SameMessageId_DifferentPayload_GoesToErrorQueueWithReasonAndIsAudited()
    {
        var (scenario, host) = await StartAsync();
        await using var _ = host;
        var id = Guid.NewGuid();

        await host.SendAsync(id, new Transfer("acc-1", 100));
        await Eventually.HoldsAsync(() => host.Consumed[id] == 1, "the first message is consumed");
        await host.SendAsync(id, new Transfer("acc-1", 999_00));
        await Eventually.HoldsAsync(async () => await Server.MessageCountAsync(host.VirtualHost, ConsumerHost.Queue + "_error") == 1, "the second message is in the error queue");

        var fault = Assert.Single(await Server.DrainHeadersAsync(host.VirtualHost, ConsumerHost.Queue + "_error"));
        Assert.Contains(nameof(IdempotentMessageRejectedException), fault["MT-Fault-ExceptionType"], StringComparison.Ordinal);
        Assert.Contains("different payload", fault["MT-Fault-Message"], StringComparison.Ordinal);
        Assert.Contains(id.ToString(), fault["MT-Fault-Message"], StringComparison.Ordinal);
        Assert.Equal(1, await scenario.Ledger.RunsAsync(id.ToString()));
        Assert.Equal(100, await scenario.Ledger.CountAsync("SELECT SUM(amount) FROM effects WHERE message_key = @k", id.ToString()));

        // Audited once (the retry policy ignores the refusal), with the refused payload.
        Assert.Equal(1, await scenario.Ledger.CountAsync("SELECT COUNT(*) FROM oncely_key_reuse_audit WHERE idem_key = @k AND payload LIKE '%99900%' AND stored_fingerprint <> attempted_fingerprint", id.ToString()));
        Assert.Equal(1, host.Log.Count(IdempotencyEventIds.KeyReused));
    }

    [Fact]
    public async Task CardNumbersInAMessage_NeverReachTheLogNorTheAudit_WhateverTheFieldIsCalled()
    {
        var (scenario, host) = await StartAsync();
        await using var _ = host;
        var id = Guid.NewGuid();
        var cards = new[] { "4111 1111 1111 1111", "4111111111111111", "5555-5555-5555-4444", "5555555555554444" };

        await host.SendAsync(id, new Transfer("acct for card 4111 1111 1111 1111", 100));
        await Eventually.HoldsAsync(() => host.Consumed[id] == 1, "the first message is consumed");
        await host.SendAsync(id, new Transfer("acct for card 4111 1111 1111 1111", 100));
        await Eventually.HoldsAsync(() => host.Log.Count(IdempotencyEventIds.MessageReplayed) == 1, "the duplicate is replayed", details: host.Log.ToString);
        await host.SendAsync(id, new Transfer("now 5555-5555-5555-4444", 999_00));
        await Eventually.HoldsAsync(async () => await Server.MessageCountAsync(host.VirtualHost, ConsumerHost.Queue + "_error") == 1, "the reused id is refused", details: host.Log.ToString);

        // The refusal is audited with the refused payload, its card number masked before it was stored.
        Assert.Equal(1, await scenario.Ledger.CountAsync("SELECT COUNT(*) FROM oncely_key_reuse_audit WHERE idem_key = @k AND payload LIKE '%****-****-****-4444%'", id.ToString()));
        var log = host.Log.ToString();
        Assert.Contains(id.ToString(), log, StringComparison.Ordinal); // positive control: the capture holds the filter's lines
        Assert.Equal(1, host.Log.Count(IdempotencyEventIds.KeyReused));
        Assert.Contains("****-****-****-4444", Assert.Single(host.Log.Texts(IdempotencyEventIds.KeyReused)), StringComparison.Ordinal);
        foreach (var card in cards)
        {
            Assert.DoesNotContain(card, log, StringComparison.Ordinal);
            Assert.Equal(0, await scenario.Ledger.CountAsync("SELECT COUNT(*) FROM oncely_key_reuse_audit WHERE payload LIKE '%' || @k || '%'", card));
        }

        Assert.Equal(1, await scenario.Ledger.EffectsAsync(id.ToString()));
    }

    [Fact]
    public async Task SameMessageId_DifferentPayload_RefusedOnARetryAfterAStoreOutage_AuditedOnce()
    {
        OutageStore? outage = null;
        var (scenario, host) = await StartAsync(wrapStore: inner => outage = new OutageStore(inner));
        await using var _ = host;
        var id = Guid.NewGuid();

        await host.SendAsync(id, new Transfer("acc-1", 100));
        await Eventually.HoldsAsync(() => host.Consumed[id] == 1, "the first message is consumed");

        // The re-use's first attempt meets a store outage (retried); its retry finds the key held by another payload.
        outage!.FailNextReservations(1);
        await host.SendAsync(id, new Transfer("acc-1", 999_00));
        await Eventually.HoldsAsync(async () => await Server.MessageCountAsync(host.VirtualHost, ConsumerHost.Queue + "_error") == 1, "the re-use is in the error queue", details: host.Log.ToString);

        var fault = Assert.Single(await Server.DrainHeadersAsync(host.VirtualHost, ConsumerHost.Queue + "_error"));
        Assert.Contains("different payload", fault["MT-Fault-Message"], StringComparison.Ordinal);
        Assert.Contains("The refusal is audited.", fault["MT-Fault-Message"], StringComparison.Ordinal);
        Assert.Equal(1, host.Log.Count(IdempotencyEventIds.StoreUnavailable));
        Assert.Equal(1, await scenario.Ledger.CountAsync("SELECT COUNT(*) FROM oncely_key_reuse_audit WHERE idem_key = @k AND payload LIKE '%99900%' AND stored_fingerprint <> attempted_fingerprint", id.ToString()));
        Assert.Equal(1, await scenario.Ledger.CountAsync("SELECT COUNT(*) FROM oncely_key_reuse_audit WHERE idem_key = @k", id.ToString()));
        Assert.Equal(1, host.Log.Count(IdempotencyEventIds.KeyReused));
        Assert.Equal(1, await scenario.Ledger.RunsAsync(id.ToString()));
        Assert.Equal(100, await scenario.Ledger.CountAsync("SELECT SUM(amount) FROM effects WHERE message_key = @k", id.ToString()));
    }

    [Fact]
    public async Task SameMessageId_DifferentPayload_RetryPolicyRetriesTheRefusal_AuditedOncePerDelivery()
    {
        // A retry policy that forgets Ignore<IdempotentMessageRejectedException>(): the refusal is met on all four attempts.
        var (scenario, host) = await StartAsync(retry: r => r.Interval(3, TimeSpan.FromMilliseconds(50)));
        await using var _ = host;
        var id = Guid.NewGuid();

        await host.SendAsync(id, new Transfer("acc-1", 100));
        await Eventually.HoldsAsync(() => host.Consumed[id] == 1, "the first message is consumed");
        await host.SendAsync(id, new Transfer("acc-1", 999_00));
        await Eventually.HoldsAsync(async () => await Server.MessageCountAsync(host.VirtualHost, ConsumerHost.Queue + "_error") == 1, "the re-use is in the error queue after its retries", details: host.Log.ToString);

        var fault = Assert.Single(await Server.DrainHeadersAsync(host.VirtualHost, ConsumerHost.Queue + "_error"));
        Assert.Contains(nameof(IdempotentMessageRejectedException), fault["MT-Fault-ExceptionType"], StringComparison.Ordinal);
        Assert.Equal(1, await scenario.Ledger.CountAsync("SELECT COUNT(*) FROM oncely_key_reuse_audit WHERE idem_key = @k", id.ToString()));
        Assert.Equal(1, host.Log.Count(IdempotencyEventIds.KeyReused));
        Assert.Equal(1, await scenario.Ledger.RunsAsync(id.ToString()));
    }

    [Fact]
    public async Task SameMessageId_DifferentPayload_AuditWriteFailsOnce_WrittenOnTheNextAttemptOfTheDelivery()
    {
        OutageStore? outage = null;
        var (scenario, host) = await StartAsync(wrapStore: inner => outage = new OutageStore(inner), retry: r => r.Interval(3, TimeSpan.FromMilliseconds(50)));
        await using var _ = host;
        var id = Guid.NewGuid();

        await host.SendAsync(id, new Transfer("acc-1", 100));
        await Eventually.HoldsAsync(() => host.Consumed[id] == 1, "the first message is consumed");
        outage!.FailNextAudits(1);
        await host.SendAsync(id, new Transfer("acc-1", 999_00));
        await Eventually.HoldsAsync(async () => await Server.MessageCountAsync(host.VirtualHost, ConsumerHost.Queue + "_error") == 1, "the re-use is in the error queue after its retries", details: host.Log.ToString);

        // The first attempt's entry was lost with the store; the second attempt wrote it; the last two added nothing.
        Assert.Equal(1, host.Log.Count(IdempotencyEventIds.AuditFailed));
        Assert.Equal(2, host.Log.Count(IdempotencyEventIds.KeyReused));
        Assert.Equal(1, await scenario.Ledger.CountAsync("SELECT COUNT(*) FROM oncely_key_reuse_audit WHERE idem_key = @k AND payload LIKE '%99900%'", id.ToString()));
        var fault = Assert.Single(await Server.DrainHeadersAsync(host.VirtualHost, ConsumerHost.Queue + "_error"));
        Assert.Contains("The refusal is audited.", fault["MT-Fault-Message"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task PublishedToTwoEndpoints_EachConsumerAndHandlerRunsOnce_RepublishedWithSameIdRunsNone()
    {
        var ledger = new TransferLedger(TransferLedger.ConnectionStringFor(Path.Combine(_directory, "ledger.db")));
        await ledger.EnsureSchemaAsync();
        var handled = new ConcurrentDictionary<string, int>();
        var log = new LogCapture();
        var virtualHost = Server.NewVirtualHost();
        var services = new ServiceCollection();
        services.AddLogging(logging => logging.AddProvider(log).SetMinimumLevel(LogLevel.Debug));
        services.AddSingleton(ledger);
        services.AddIdempotentConsumers(o => o.Lease = TimeSpan.FromSeconds(5)).UseSqlite(ledger.ConnectionString);
        services.AddMassTransit(bus =>
        {
            bus.AddConsumer<QueueLedgerConsumer>();
            bus.UsingRabbitMq((context, cfg) =>
            {
                cfg.Host(Server.HostAddress(virtualHost), h =>
                {
                    h.Username(RabbitMqServer.User);
                    h.Password(RabbitMqServer.Password);
                });
                cfg.UseMessageRetry(r =>
                {
                    r.Ignore<IdempotentMessageRejectedException>();
                    r.Interval(100, TimeSpan.FromMilliseconds(100));
                });
                cfg.UseIdempotentConsumers(context);

                // The ordinary fan-out: one message type, one consumer class on two queues, and a handler on two more.
                foreach (var queue in new[] { "ledger-a", "ledger-b" })
                {
                    cfg.ReceiveEndpoint(queue, e => e.ConfigureConsumer<QueueLedgerConsumer>(context));
                }

                foreach (var queue in new[] { "notify-a", "notify-b" })
                {
                    cfg.ReceiveEndpoint(queue, e => e.Handler<Transfer>(_ =>
                    {
                        handled.AddOrUpdate(queue, 1, (_, n) => n + 1);
                        return Task.CompletedTask;
                    }));
                }
            });
        });
        await using var provider = services.BuildServiceProvider();
        var bus = provider.GetRequiredService<IBusControl>();
        var consumed = new ConsumedCounter();
        bus.ConnectReceiveObserver(consumed);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await bus.StartAsync(timeout.Token);
        var id = Guid.NewGuid();
        var key = id.ToString();
        try
        {
            await bus.Publish(new Transfer("acc-1", 100), c => c.MessageId = id, timeout.Token);
            await Eventually.HoldsAsync(() => consumed[id] == 4, "each of the four endpoints consumed the message", details: () => log + "\n" + consumed.Faults);

            // The same message again (an outbox re-send, a publisher retry): every endpoint acknowledges it without running.
            await bus.Publish(new Transfer("acc-1", 100), c => c.MessageId = id, timeout.Token);
            await Eventually.HoldsAsync(() => consumed[id] == 8, "each of the four endpoints acknowledged the copy", details: () => log + "\n" + consumed.Faults);
        }
        finally
        {
            await bus.StopAsync(timeout.Token);
        }

        Assert.Equal(1, await ledger.CountAsync("SELECT COUNT(*) FROM effects WHERE message_key = @k AND account = 'ledger-a'", key));
        Assert.Equal(1, await ledger.CountAsync("SELECT COUNT(*) FROM effects WHERE message_key = @k AND account = 'ledger-b'", key));
        Assert.Equal(2, await ledger.EffectsAsync(key));
        Assert.Equal(2, await ledger.RunsAsync(key));
        Assert.Equal(1, handled.GetValueOrDefault("notify-a"));
        Assert.Equal(1, handled.GetValueOrDefault("notify-b"));
        Assert.Equal(4, log.Count(IdempotencyEventIds.MessageReplayed));

        // One record per consumer per endpoint, each completed.
        var store = provider.GetRequiredService<IIdempotencyStore>();
        foreach (var operation in new[]
        {
            typeof(QueueLedgerConsumer).FullName + "@ledger-a",
            typeof(QueueLedgerConsumer).FullName + "@ledger-b",
            "handler:" + MessageUrn.ForTypeString<Transfer>() + "@notify-a",
            "handler:" + MessageUrn.ForTypeString<Transfer>() + "@notify-b",
        })
        {
            var record = await store.GetAsync(new IdempotencyRecordId(IdempotencyRecordId.AnonymousTenant, operation, key), CancellationToken.None);
            Assert.True(record?.State == IdempotencyRecordState.Completed, $"{operation}: {record?.State.ToString() ?? "no record"}");
        }
    }

    [Fact]
    public async Task Duplicate_OnSecondInstanceWhileFirstRuns_NeverRunsConcurrentlyAndIsAcknowledgedAfter()
    {
        var (scenario, first) = await StartAsync(concurrency: 1);
        await using var _ = first;
        await using var second = await ConsumerHost.StartAsync(Server, first.VirtualHost, scenario, concurrency: 1);
        scenario.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var id = Guid.NewGuid();

        await first.SendAsync(id, new Transfer("acc-1", 100));
        await Eventually.HoldsAsync(async () => await scenario.Ledger.RunsAsync(id.ToString()) == 1, "one instance runs the consumer");
        await first.SendAsync(id, new Transfer("acc-1", 100));

        // The instance that runs it holds its only delivery slot, so the broker gives the duplicate to the other one,
        // which finds the record held and hands the duplicate back to retry, again and again.
        await Eventually.HoldsAsync(() => first.Log.Count(IdempotencyEventIds.MessageInProgress) + second.Log.Count(IdempotencyEventIds.MessageInProgress) >= 3, "the duplicate is refused as in progress");
        Assert.Equal(1, await scenario.Ledger.RunsAsync(id.ToString()));

        scenario.Gate.SetResult();
        await Eventually.HoldsAsync(() => first.Consumed[id] + second.Consumed[id] == 2, "both deliveries are acknowledged");

        Assert.Equal(1, scenario.MaxRunning);
        Assert.Equal(1, await scenario.Ledger.RunsAsync(id.ToString()));
        Assert.Equal(1, await scenario.Ledger.EffectsAsync(id.ToString()));
        Assert.True(await Server.MessageCountAsync(first.VirtualHost, ConsumerHost.Queue + "_error") <= 0, "nothing went to the error queue");
    }

    [Fact]
    public async Task ConsumerThrows_RecordReleased_RetryRunsAgainAndAppliesOnce()
    {
        var (scenario, host) = await StartAsync();
        await using var _ = host;
        scenario.ThrowBeforeCommit(1);
        var id = Guid.NewGuid();

        await host.SendAsync(id, new Transfer("acc-1", 100));
        await Eventually.HoldsAsync(() => host.Consumed[id] == 1, "the message is consumed on a retry");

        Assert.Equal(2, await scenario.Ledger.RunsAsync(id.ToString()));
        Assert.Equal(1, await scenario.Ledger.EffectsAsync(id.ToString()));
        Assert.Equal(1, host.Log.Count(IdempotencyEventIds.Released));
    }

    [Fact]
    public async Task ConsumerThrowsAfterRecoveryPoint_RetryResumesThereAndAppliesEachPhaseOnce()
    {
        var (scenario, host) = await StartAsync();
        await using var _ = host;
        scenario.TwoPhases = true;
        var id = Guid.NewGuid();
        var key = id.ToString();

        await host.SendAsync(id, new Transfer("acc-1", 100));
        await Eventually.HoldsAsync(() => host.Consumed[id] == 1, "the message is consumed on a retry", details: host.Log.ToString);

        Assert.Equal(["start", "phase-1"], scenario.ResumedFrom);
        Assert.Equal(1, await scenario.Ledger.CountAsync("SELECT COUNT(*) FROM effects WHERE message_key = @k AND account = 'phase-1'", key));
        Assert.Equal(1, await scenario.Ledger.CountAsync("SELECT COUNT(*) FROM effects WHERE message_key = @k AND account = 'acc-1'", key));
        Assert.Equal(2, await scenario.Ledger.RunsAsync(key));
    }

    [Fact]
    public async Task FailureAfterCommitBeforeAck_RetryAcknowledgesWithoutRunningAgain()
    {
        var (scenario, host) = await StartAsync();
        await using var _ = host;
        scenario.ThrowAfterCommit(1);
        var id = Guid.NewGuid();

        await host.SendAsync(id, new Transfer("acc-1", 100));
        await Eventually.HoldsAsync(() => host.Consumed[id] == 1, "the message is acknowledged on a retry");

        // The effect and the completion committed together, so the retry found the record Completed.
        Assert.Equal(1, await scenario.Ledger.RunsAsync(id.ToString()));
        Assert.Equal(1, await scenario.Ledger.EffectsAsync(id.ToString()));
        Assert.Equal(1, host.Log.Count(IdempotencyEventIds.MessageReplayed));
        Assert.Equal(1, host.Log.Count(IdempotencyEventIds.ReleaseRefusedCompleted));
    }

    [Fact]
    public async Task StoreDown_NothingRuns_MessageConsumedOnceAfterStoreReturns()
    {
        OutageStore? outage = null;
        var (scenario, host) = await StartAsync(wrapStore: inner => outage = new OutageStore(inner) { Down = true });
        await using var _ = host;
        var id = Guid.NewGuid();

        await host.SendAsync(id, new Transfer("acc-1", 100));
        await Eventually.HoldsAsync(() => host.Log.Count(IdempotencyEventIds.StoreUnavailable) >= 3, "deliveries are refused while the store is down");
        Assert.Equal(0, await scenario.Ledger.RunsAsync(id.ToString()));
        Assert.Equal(0, host.Consumed[id]);

        outage!.Down = false;
        await Eventually.HoldsAsync(() => host.Consumed[id] == 1, "the message is consumed once the store is back");

        Assert.Equal(1, await scenario.Ledger.RunsAsync(id.ToString()));
        Assert.Equal(1, await scenario.Ledger.EffectsAsync(id.ToString()));
        Assert.True(await Server.MessageCountAsync(host.VirtualHost, ConsumerHost.Queue + "_error") <= 0, "nothing went to the error queue");
    }

    [Fact]
    public async Task KeyAndTenantFromHeaders_ScopePerTenant_MissingTenantGoesToErrorQueue()
    {
        var (scenario, host) = await StartAsync(options: o =>
        {
            o.KeyHeader = "Payout-Id";
            o.TenantHeader = "Tenant";
        });
        await using var _ = host;
        const string Key = "payout-42";

        // Two sends with different message ids but one key: one effect for tenant a; the same key for tenant b is its own record.
        await host.SendAsync(Guid.NewGuid(), new Transfer("acc-1", 100), c => { c.Headers.Set("Payout-Id", Key); c.Headers.Set("Tenant", "a"); });
        await host.SendAsync(Guid.NewGuid(), new Transfer("acc-1", 100), c => { c.Headers.Set("Payout-Id", Key); c.Headers.Set("Tenant", "a"); });
        await host.SendAsync(Guid.NewGuid(), new Transfer("acc-1", 100), c => { c.Headers.Set("Payout-Id", Key); c.Headers.Set("Tenant", "b"); });
        await host.SendAsync(Guid.NewGuid(), new Transfer("acc-1", 100), c => c.Headers.Set("Payout-Id", Key));
        await Eventually.HoldsAsync(() => host.Consumed.Total == 3, "three messages are consumed");
        await Eventually.HoldsAsync(async () => await Server.MessageCountAsync(host.VirtualHost, ConsumerHost.Queue + "_error") == 1, "the message without a tenant is in the error queue");

        Assert.Equal(2, await scenario.Ledger.RunsAsync(Key));
        Assert.Equal(2, await scenario.Ledger.EffectsAsync(Key));
        var fault = Assert.Single(await Server.DrainHeadersAsync(host.VirtualHost, ConsumerHost.Queue + "_error"));
        Assert.Contains("Tenant header", fault["MT-Fault-Message"], StringComparison.Ordinal);
        Assert.Equal(1, host.Log.Count(IdempotencyEventIds.MessageRejected));
    }

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task Redelivery_StoredResultProtectedUnderALostKey_AcknowledgedWithoutRunning()
    {
        var keyRing = Directory.CreateDirectory(Path.Combine(_directory, "keys"));
        void Protect(IIdempotencyBuilder idempotency)
        {
            idempotency.Services.AddDataProtection().SetApplicationName("oncely-consumer-tests").PersistKeysToFileSystem(keyRing);
            idempotency.ProtectStoredAnswers();
        }

        var ledger = new TransferLedger(TransferLedger.ConnectionStringFor(Path.Combine(_directory, "ledger.db")));
        await ledger.EnsureSchemaAsync();
        var scenario = new Scenario(ledger);
        var virtualHost = Server.NewVirtualHost();
        var id = Guid.NewGuid();
        await using (var first = await ConsumerHost.StartAsync(Server, virtualHost, scenario, idempotencyBuilder: Protect))
        {
            await first.SendAsync(id, new Transfer("acc-1", 100));
            await Eventually.HoldsAsync(() => first.Consumed[id] == 1, "the first delivery is consumed");
        }

        Assert.Equal(1, await ledger.CountAsync("SELECT COUNT(*) FROM oncely_records WHERE idem_key = @k AND headers LIKE '%Oncely-Protected%'", id.ToString()));
        foreach (var file in keyRing.GetFiles())
        {
            file.Delete();
        }

        // A new instance whose key ring lacks the key the stored result was sealed with; the message comes again.
        await using var second = await ConsumerHost.StartAsync(Server, virtualHost, scenario, idempotencyBuilder: Protect);
        await second.SendAsync(id, new Transfer("acc-1", 100));
        await Eventually.HoldsAsync(() => second.Log.Count(IdempotencyEventIds.MessageReplayed) == 1, "the redelivery is acknowledged", details: second.Log.ToString);

        Assert.Equal(1, second.Log.Count(IdempotencyEventIds.StoredAnswerUnreadable));
        Assert.Equal(1, await ledger.RunsAsync(id.ToString()));
        Assert.Equal(1, await ledger.EffectsAsync(id.ToString()));
        Assert.True(await Server.MessageCountAsync(virtualHost, ConsumerHost.Queue + "_error") <= 0, "nothing went to the error queue");
    }

    private async Task<(Scenario Scenario, ConsumerHost Host)> StartAsync(
        Action<IdempotentConsumerOptions>? options = null,
        Func<IIdempotencyStore, IIdempotencyStore>? wrapStore = null,
        int concurrency = 4,
        Action<IRetryConfigurator>? retry = null)
    {
        var ledger = new TransferLedger(TransferLedger.ConnectionStringFor(Path.Combine(_directory, "ledger.db")));
        await ledger.EnsureSchemaAsync();
        var scenario = new Scenario(ledger);
        var host = await ConsumerHost.StartAsync(Server, Server.NewVirtualHost(), scenario, options, wrapStore, concurrency, retry);
        return (scenario, host);
    }
}

/// <summary>Applies a transfer once per queue it is consumed from: the effect row names the queue, and commits with the record's completion.</summary>
public sealed class QueueLedgerConsumer(TransferLedger ledger) : IConsumer<Transfer>
{
    public async Task Consume(ConsumeContext<Transfer> context)
    {
        var key = context.GetIdempotencyExecution()?.Id.Key ?? throw new InvalidOperationException("The consumer runs without the idempotent filter.");
        var queue = context.ReceiveContext.InputAddress.AbsolutePath.Split('/')[^1];
        await ledger.RecordRunAsync(key);
        await using var connection = await ledger.OpenAsync();
        await using var transaction = TransferLedger.BeginWrite(connection);
        await TransferLedger.InsertEffectAsync(connection, transaction, key, context.Message with { Account = queue });
        await context.CompleteIdempotencyInTransactionAsync(transaction);
        await transaction.CommitAsync();
    }
}
