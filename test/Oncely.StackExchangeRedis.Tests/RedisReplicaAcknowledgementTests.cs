using Oncely.StackExchangeRedis.Tests.Infrastructure;
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
    public async Task EveryProgressWrite_OneReplicaRequired_IsOnTheReplicaWhenTheStoreReturns()
    {
        var logger = new CapturingLogger();
        await using var store = new RedisIdempotencyStore(fixture.Primary.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = NewPrefix("wait"), ReplicaAcknowledgements = 1 }, logger);
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
