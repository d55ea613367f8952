using Oncely.AspNetCore;
using Oncely.StackExchangeRedis.Tests.Infrastructure;
using Oncely.Storage.Specification;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;
using static Oncely.StackExchangeRedis.Tests.Infrastructure.StoreFactory;

namespace Oncely.StackExchangeRedis.Tests;

/// <summary>A primary and one replica of its own (<c>--replicaof</c>), for the <c>WAIT</c> option.</summary>
public sealed class ReplicatedRedisFixture : IAsyncLifetime
{
    public RedisServer Primary { get; private set; } = null!;

    public RedisServer Replica { get; private set; } = null!;

    public ConnectionMultiplexer ToReplica { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Primary = await RedisServer.StartNewAsync();
        Replica = await RedisServer.StartNewAsync(persistent: false, "--replicaof", "127.0.0.1", Primary.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var deadline = DateTimeOffset.UtcNow.AddSeconds(20);
        while (!(await Primary.RawAsync("INFO replication")).Contains("state=online", StringComparison.Ordinal))
        {
            Assert.True(DateTimeOffset.UtcNow < deadline, "The replica did not come online: " + Replica.Log());
            await Task.Delay(50);
        }

        ToReplica = await SharedRedis.ConnectAsync(Replica.EndPoint);
    }

    public async Task DisposeAsync()
    {
        await ToReplica.DisposeAsync();
        await Replica.DisposeAsync();
        await Primary.DisposeAsync();
    }
}

[Collection(OutageCollection.Name)]
public sealed class RedisReplicaAcknowledgementTests(ReplicatedRedisFixture fixture) : IClassFixture<ReplicatedRedisFixture>
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    [Fact]
    public async Task EveryProgressWrite_DefaultOptionsWithAReplica_IsOnTheReplicaWhenTheStoreReturns()
    {
        var logger = new CapturingLogger();
        await using var store = new RedisIdempotencyStore(fixture.Primary.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = NewPrefix("wait") }, logger);
        var replica = fixture.ToReplica.GetDatabase();

        for (var i = 0; i < 20; i++)
        {
            var id = NewId();
            var key = store.Keys.Record(id);
            var reserved = await store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
            Assert.Equal(ReservationOutcome.Acquired, reserved.Outcome);
            Assert.Equal(reserved.Record.FencingToken, (long)await replica.HashGetAsync(key, "t", CommandFlags.DemandReplica));

            Assert.True(await store.TrySetRecoveryPointAsync(id, reserved.Record.FencingToken, "charged", Minute, default));
            Assert.Equal("charged", (string?)await replica.HashGetAsync(key, "p", CommandFlags.DemandReplica));

            Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, new IdempotentResponse(201, [], "{}"u8.ToArray()), Hour, default));
            Assert.Equal("1", (string?)await replica.HashGetAsync(key, "s", CommandFlags.DemandReplica));
        }

        Assert.DoesNotContain(logger.Events, e => e.Id.Id == IdempotencyEventIds.RedisReplicaAcknowledgementMissing);
        var mode = Assert.Single(logger.Events, e => e.Id.Id == IdempotencyEventIds.RedisReplicaAcknowledgementsRequired);
        Assert.Contains("automatic: 1 replica(s) found", mode.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(logger.Events, e => e.Level >= LogLevel.Warning);
    }

    // Issue 24, item 1: safe by default. A paused replica acknowledges nothing, so with the default options nothing may
    // run: the reservation fails closed and is given back. With the opt-out, the same reservation is granted at once.
    [Fact]
    public async Task Reserve_DefaultOptionsReplicaStalled_FailsClosedAndGivesTheReservationBack()
    {
        var logger = new CapturingLogger();
        var prefix = NewPrefix("wait-default");
        await using var safe = new RedisIdempotencyStore(fixture.Primary.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = prefix }, logger);
        await using var plain = new RedisIdempotencyStore(fixture.Primary.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = prefix, ReplicaAcknowledgements = 0 });
        await safe.InitializeAsync(default);
        var id = NewId();

        await fixture.Replica.PauseAsync();
        try
        {
            var refused = await Assert.ThrowsAsync<IdempotencyStoreUnavailableException>(async () => await safe.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default));
            Assert.Contains("only 0 of the 1 required replicas", refused.Message, StringComparison.Ordinal);
            Assert.Null(await plain.GetAsync(id, default));

            // The opt-out does not wait: granted while the replica acknowledges nothing.
            Assert.Equal(ReservationOutcome.Acquired, (await plain.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default)).Outcome);
        }
        finally
        {
            await fixture.Replica.ResumeAsync();
        }

        Assert.Single(logger.Events, e => e.Id.Id == IdempotencyEventIds.RedisReplicaAcknowledgementMissing);
        Assert.Single(logger.Events, e => e.Id.Id == IdempotencyEventIds.RedisReplicaAcknowledgementsRequired);
        Assert.Contains(logger.Events, e => e.Id.Id == IdempotencyEventIds.RedisStoreReady && e.Message.Contains("replica acknowledgements required: 1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Initialize_MoreAcknowledgementsRequiredThanAPrimaryHasReplicas_WarnsNamingThePrimary()
    {
        var logger = new CapturingLogger();
        await using var store = new RedisIdempotencyStore(fixture.Primary.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = NewPrefix("lacking"), ReplicaAcknowledgements = 2 }, logger);
        var quiet = new CapturingLogger();
        await using var enough = new RedisIdempotencyStore(fixture.Primary.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = NewPrefix("enough") }, quiet);

        await store.InitializeAsync(default);
        await enough.InitializeAsync(default);

        var warning = Assert.Single(logger.Events, e => e.Id.Id == IdempotencyEventIds.RedisPrimariesLackReplicas);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains($"{fixture.Primary.Port} (1)", warning.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(quiet.Events, e => e.Id.Id == IdempotencyEventIds.RedisPrimariesLackReplicas);
    }

    [Fact]
    public async Task Initialize_ReplicasExistButAcknowledgementsSetToZero_WarnsThatAFailoverCanRunAnOperationTwice()
    {
        var logger = new CapturingLogger();
        await using var store = new RedisIdempotencyStore(fixture.Primary.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = NewPrefix("opt-out"), ReplicaAcknowledgements = 0 }, logger);

        await store.InitializeAsync(default);

        var warning = Assert.Single(logger.Events, e => e.Id.Id == IdempotencyEventIds.RedisReplicaAcknowledgementsOff);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("1 replica(s) exist", warning.Message, StringComparison.Ordinal);
        Assert.Contains("runs the operation a second time", warning.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(logger.Events, e => e.Id.Id == IdempotencyEventIds.RedisReplicaAcknowledgementsRequired);
    }

    [Fact]
    public async Task Reserve_DefaultOptionsOnAServerWithoutReplicas_DoesNotWaitAndWarnsThatALostNodeLosesRecords()
    {
        await using var lone = await RedisServer.StartNewAsync();
        var logger = new CapturingLogger();
        await using var store = new RedisIdempotencyStore(lone.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = NewPrefix("lone") }, logger);
        var id = NewId();

        var reserved = await store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
        Assert.Equal(ReservationOutcome.Acquired, reserved.Outcome);
        Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, new IdempotentResponse(201, [], "{}"u8.ToArray()), Hour, default));
        await store.InitializeAsync(default);

        var warning = Assert.Single(logger.Events, e => e.Id.Id == IdempotencyEventIds.RedisNoReplicas);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("loses its idempotency records", warning.Message, StringComparison.Ordinal);
        Assert.Contains(logger.Events, e => e.Id.Id == IdempotencyEventIds.RedisStoreReady && e.Message.Contains("replica acknowledgements required: 0", StringComparison.Ordinal));
        Assert.DoesNotContain(logger.Events, e => e.Id.Id is IdempotencyEventIds.RedisReplicaAcknowledgementsRequired or IdempotencyEventIds.RedisReplicaAcknowledgementMissing);
    }

    // Issue 24, item 2: a caller that gives up while the replica acknowledgement is pending (a client that hung up, the
    // engine's StoreTimeout) used to leave the reservation held for its whole lease (every retry 409), because the
    // give-back ran only for failures classified "store unavailable". Whatever ends the wait, it is given back.
    [Fact]
    public async Task Reserve_CallerGivesUpWhileTheReplicaIsStalled_TheReservationIsGivenBack()
    {
        var prefix = NewPrefix("hang-up");
        await using var safe = new RedisIdempotencyStore(fixture.Primary.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = prefix });
        await using var plain = new RedisIdempotencyStore(fixture.Primary.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = prefix, ReplicaAcknowledgements = 0 });
        await safe.InitializeAsync(default);
        var id = NewId();

        await fixture.Replica.PauseAsync();
        try
        {
            using var hangUp = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await safe.TryReserveAsync(id, Fingerprint('a'), Hour, Hour, hangUp.Token));

            // The reservation was written (the WAIT after it is what hangs) and is released once the WAIT ends, unacknowledged.
            await WaitUntilGoneAsync(plain, id);
        }
        finally
        {
            await fixture.Replica.ResumeAsync();
        }

        Assert.Equal(ReservationOutcome.Acquired, (await safe.TryReserveAsync(id, Fingerprint('a'), Hour, Hour, default)).Outcome);
    }

    [Fact]
    public async Task Reserve_CallerGivesUpThenTheReplicaAcknowledges_TheReservationIsStillGivenBack()
    {
        var prefix = NewPrefix("hang-up-acked");
        await using var safe = new RedisIdempotencyStore(fixture.Primary.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = prefix, ReplicaAcknowledgementTimeout = TimeSpan.FromSeconds(3) });
        await using var plain = new RedisIdempotencyStore(fixture.Primary.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = prefix, ReplicaAcknowledgements = 0 });
        await safe.InitializeAsync(default);
        var id = NewId();

        await fixture.Replica.PauseAsync();
        try
        {
            using var hangUp = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await safe.TryReserveAsync(id, Fingerprint('a'), Hour, Hour, hangUp.Token));
        }
        finally
        {
            await fixture.Replica.ResumeAsync();
        }

        // Nobody runs a reservation whose caller is gone, acknowledged or not.
        await WaitUntilGoneAsync(plain, id);
    }

    // The same through HTTP: the engine gives up on the store after its StoreTimeout (here 1.5 s, shorter than the 3 s
    // WAIT, as a client deadline would be), answers 503, and the key must be usable again once the WAIT has ended, not
    // refused for the whole lease (30 s).
    [Fact]
    public async Task Post_EngineGivesUpWhileTheReplicaIsStalled_ARetryExecutesOnceTheReplicaIsBack()
    {
        var ledger = new InProcessChargeLedger();
        var prefix = NewPrefix("hang-up-http");
        await using var app = await RedisChargesApp.StartAsync("a", fixture.Primary.EndPoint, prefix, ledger, TimeSpan.Zero,
            configureStore: o => o.ReplicaAcknowledgementTimeout = TimeSpan.FromSeconds(3),
            configureIdempotency: o => o.StoreTimeout = TimeSpan.FromSeconds(1.5));
        var key = "hang-up-" + Guid.NewGuid().ToString("N");
        var warm = await app.SendAsync("warm-" + key, 1);
        for (var attempt = 0; attempt < 20 && warm.Status != System.Net.HttpStatusCode.Created; attempt++)
        {
            // A loaded machine may need more than one try for the first connection; the warm-up key is not the subject.
            warm = await app.SendAsync("warm-" + key, 1);
        }

        Assert.True(warm.IsExecution, warm.ToString());

        await fixture.Replica.PauseAsync();
        try
        {
            var first = await app.SendAsync(key, 100);
            Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, first.Status);
        }
        finally
        {
            await fixture.Replica.ResumeAsync();
        }

        ChargesApp.Answer? retry = null;
        for (var attempt = 0; attempt < 40 && retry?.Status != System.Net.HttpStatusCode.Created; attempt++)
        {
            if (attempt > 0)
            {
                await Task.Delay(250);
            }

            retry = await app.SendAsync(key, 100);
            Assert.True(retry.Status is System.Net.HttpStatusCode.Created or System.Net.HttpStatusCode.Conflict or System.Net.HttpStatusCode.ServiceUnavailable, retry.ToString());
        }

        Assert.True(retry!.IsExecution, $"The key stayed refused for 10 s (the lease is 30 s): {retry}");
        Assert.Equal(1, ledger.Charges[key]);
    }

    private static async Task WaitUntilGoneAsync(RedisIdempotencyStore store, IdempotencyRecordId id)
    {
        // Bounded well below the one-hour lease: a reservation kept for its lease fails here.
        for (var attempt = 0; await store.GetAsync(id, default) is not null; attempt++)
        {
            Assert.True(attempt < 100, "The abandoned reservation was still held after 10 s.");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task Reserve_MoreReplicasRequiredThanAcknowledge_FailsClosedAndGivesTheReservationBack()
    {
        var logger = new CapturingLogger();
        var prefix = NewPrefix("wait-short");
        await using var strict = new RedisIdempotencyStore(fixture.Primary.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = prefix, ReplicaAcknowledgements = 2, ReplicaAcknowledgementTimeout = TimeSpan.FromMilliseconds(100) }, logger);
        await using var plain = new RedisIdempotencyStore(fixture.Primary.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = prefix });
        var id = NewId();

        var refused = await Assert.ThrowsAsync<IdempotencyStoreUnavailableException>(async () => await strict.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default));

        Assert.Contains("only 1 of the 2 required replicas", refused.Message, StringComparison.Ordinal);
        Assert.Single(logger.Events, e => e.Id.Id == IdempotencyEventIds.RedisReplicaAcknowledgementMissing);
        Assert.Null(await plain.GetAsync(id, default)); // given back: nothing runs on a reservation a failover could lose
        Assert.Equal(ReservationOutcome.Acquired, (await plain.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default)).Outcome);
    }

    [Fact]
    public async Task Complete_TooFewAcknowledgements_FailsClosedThenARetryOfTheSameCompletionSucceeds()
    {
        var prefix = NewPrefix("wait-complete");
        await using var strict = new RedisIdempotencyStore(fixture.Primary.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = prefix, ReplicaAcknowledgements = 2, ReplicaAcknowledgementTimeout = TimeSpan.FromMilliseconds(100) });
        await using var one = new RedisIdempotencyStore(fixture.Primary.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = prefix, ReplicaAcknowledgements = 1 });
        var id = NewId();
        var reserved = await one.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
        var answer = new IdempotentResponse(201, [new("Location", "/p/9")], "{\"id\":9}"u8.ToArray());

        await Assert.ThrowsAsync<IdempotencyStoreUnavailableException>(async () => await strict.TryCompleteAsync(id, reserved.Record.FencingToken, answer, Hour, default));

        // The engine retries a failed completion: the same token and answer are reported as stored, not as a lost lease.
        Assert.True(await one.TryCompleteAsync(id, reserved.Record.FencingToken, answer, Hour, default));
        Assert.Equal(IdempotencyRecordState.Completed, (await one.GetAsync(id, default))!.State);
    }
}
