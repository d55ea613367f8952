using Oncely.MassTransit.Testing;
using Oncely.MassTransit.Tests.Infrastructure;

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

    private async Task<(Scenario Scenario, ConsumerHost Host)> StartAsync(
        Action<IdempotentConsumerOptions>? options = null,
        Func<IIdempotencyStore, IIdempotencyStore>? wrapStore = null,
        int concurrency = 4)
    {
        var ledger = new TransferLedger(TransferLedger.ConnectionStringFor(Path.Combine(_directory, "ledger.db")));
        await ledger.EnsureSchemaAsync();
        var scenario = new Scenario(ledger);
        var host = await ConsumerHost.StartAsync(Server, Server.NewVirtualHost(), scenario, options, wrapStore, concurrency);
        return (scenario, host);
    }
}
