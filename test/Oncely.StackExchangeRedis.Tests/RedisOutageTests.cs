using Oncely.StackExchangeRedis.Tests.Infrastructure;
using Oncely.Storage.Specification;
using Xunit.Abstractions;
using static Oncely.StackExchangeRedis.Tests.Infrastructure.StoreFactory;

namespace Oncely.StackExchangeRedis.Tests;

[CollectionDefinition(Name)]
public sealed class OutageCollection
{
    public const string Name = "Redis outage";
}

/// <summary>
/// Stops, pauses and restarts a server, under the store alone and under live charge traffic (the shared outage
/// specification), so it uses a server of its own (with an append-only file, so a stop and start keeps the data, as a
/// restarted production server does): the shared ones keep serving the other classes.
/// </summary>
[Collection(OutageCollection.Name)]
public sealed class RedisOutageTests(PrivateRedisFixture fixture, ITestOutputHelper output)
    : ChargeTrafficOutageSpecification(output), IClassFixture<PrivateRedisFixture>
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    private readonly RedisServer _server = fixture.Server;
    private readonly InProcessChargeLedger _ledger = new();

    // StackExchange.Redis reconnects in the background: the first requests after the restart may still be refused.
    protected override bool ConnectedWhenServerStarts => false;

    [Fact]
    public async Task EveryOperation_ServerStopped_ThrowsUnavailableThenWorksAfterRestart()
    {
        await using var store = new RedisIdempotencyStore(_server.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = NewPrefix("down"), CommandTimeout = TimeSpan.FromSeconds(2) });
        await store.InitializeAsync(default);
        var id = NewId();
        var held = await store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        await _server.StopAsync();
        try
        {
            await AssertUnavailable(() => store.TryReserveAsync(NewId(), Fingerprint('a'), Minute, Hour, default).AsTask());
            await AssertUnavailable(() => store.TryCompleteAsync(id, held.Record.FencingToken, new IdempotentResponse(200, [], new byte[] { 1 }), Hour, default).AsTask());
            await AssertUnavailable(() => store.TryReleaseAsync(id, held.Record.FencingToken, default).AsTask());
            await AssertUnavailable(() => store.TrySetRecoveryPointAsync(id, held.Record.FencingToken, "p", Minute, default).AsTask());
            await AssertUnavailable(() => store.TryRenewLeaseAsync(id, held.Record.FencingToken, Minute, default).AsTask());
            await AssertUnavailable(() => store.GetAsync(id, default).AsTask());
            await AssertUnavailable(() => store.AppendAsync(new KeyReuseAuditEntry(id, Fingerprint('a'), Fingerprint('b'), "", DateTimeOffset.UnixEpoch), default).AsTask());
            await AssertUnavailable(() => store.PurgeAuditAsync(Hour, 10, default).AsTask());
            await AssertUnavailable(() => store.ListRecordsAsync(new IdempotencyRecordQuery(), default).AsTask());
            await AssertUnavailable(() => store.InitializeAsync(default).AsTask());
        }
        finally
        {
            await _server.StartAsync();
        }

        // The restarted server has the record back (append-only file) but no scripts loaded: the client sends them again.
        Assert.True(await WhenConnectedAsync(() => store.TryCompleteAsync(id, held.Record.FencingToken, new IdempotentResponse(200, [], new byte[] { 1 }), Hour, default).AsTask()));
        var replay = await store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
        Assert.Equal(ReservationOutcome.Completed, replay.Outcome);
    }

    [Fact]
    public async Task Reserve_ServerPausedLongerThanCommandTimeout_ThrowsUnavailableAndRecoversAfterwards()
    {
        await using var store = new RedisIdempotencyStore(_server.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = NewPrefix("paused"), CommandTimeout = TimeSpan.FromMilliseconds(500), ReplicaAcknowledgementTimeout = TimeSpan.FromMilliseconds(100) });
        var id = NewId();
        Assert.Equal(ReservationOutcome.Acquired, (await store.TryReserveAsync(NewId(), Fingerprint('a'), Minute, Hour, default)).Outcome);

        Assert.Equal("+OK", await _server.CommandAsync("CLIENT PAUSE 2000 ALL"));
        await AssertUnavailable(() => store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default).AsTask());

        await Task.Delay(TimeSpan.FromMilliseconds(2200));
        var after = await store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        // The timed-out call may still have run when the pause ended (fail closed, never executed twice): then it holds.
        Assert.Contains(after.Outcome, new[] { ReservationOutcome.Acquired, ReservationOutcome.InProgress });
    }

    // Without replicas a reservation is one script call and one wait. Whatever ends that wait first (the store's own
    // CommandTimeout, or the caller giving up), the call still runs once the server answers: a reservation it granted is
    // given back, so the key is free again rather than held (409 to every retry) until its lease runs out.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Reserve_NoReplicas_WaitEndsWhileServerPaused_GrantedReservationIsGivenBackOnceItAnswers(bool callerGivesUp)
    {
        await using var store = new RedisIdempotencyStore(_server.EndPoint, new RedisIdempotencyStoreOptions
        {
            KeyPrefix = NewPrefix("gave-up"),
            CommandTimeout = callerGivesUp ? TimeSpan.FromSeconds(10) : TimeSpan.FromMilliseconds(300),
            ReplicaAcknowledgementTimeout = TimeSpan.FromMilliseconds(100),
        });
        Assert.Equal(ReservationOutcome.Acquired, (await store.TryReserveAsync(NewId(), Fingerprint('a'), Minute, Hour, default)).Outcome); // connected, no replicas
        var id = NewId();

        Assert.Equal("+OK", await _server.CommandAsync("CLIENT PAUSE 1500 ALL"));
        using var caller = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        var waited = System.Diagnostics.Stopwatch.StartNew();
        if (callerGivesUp)
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => store.TryReserveAsync(id, Fingerprint('a'), Hour, Hour, caller.Token).AsTask());
        }
        else
        {
            await AssertUnavailable(() => store.TryReserveAsync(id, Fingerprint('a'), Hour, Hour, default).AsTask());
        }

        Assert.True(waited.Elapsed < TimeSpan.FromMilliseconds(1200), $"the wait ended after {waited.Elapsed}, not at once");

        // The paused call runs when the pause ends and is granted; then it is given back (no recovery point: deleted).
        var deadline = DateTime.UtcNow + Patience;
        IdempotencyRecord? left;
        while ((left = await WhenConnectedAsync(() => store.GetAsync(id, default).AsTask())) is not null && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        Assert.Null(left);
        Assert.Equal(ReservationOutcome.Acquired, (await store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default)).Outcome);
    }

    [Fact]
    public async Task Initialize_ServerMayEvictKeys_LogsAnErrorNamingThePolicy()
    {
        var logger = new CapturingLogger();
        await using var store = new RedisIdempotencyStore(_server.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = NewPrefix("evict") }, logger);
        Assert.Equal("+OK", await _server.CommandAsync("CONFIG SET maxmemory-policy volatile-lru"));
        try
        {
            await store.InitializeAsync(default);
        }
        finally
        {
            Assert.Equal("+OK", await _server.CommandAsync("CONFIG SET maxmemory-policy noeviction"));
        }

        var error = Assert.Single(logger.Events, e => e.Id.Id == IdempotencyEventIds.RedisEvictionPolicyUnsafe);
        Assert.Contains("volatile-lru", error.Message, StringComparison.Ordinal);
        Assert.Single(logger.Events, e => e.Id.Id == IdempotencyEventIds.RedisStoreReady);

        var quiet = new CapturingLogger();
        await using var safe = new RedisIdempotencyStore(_server.EndPoint, new RedisIdempotencyStoreOptions { KeyPrefix = NewPrefix("evict") }, quiet);
        await safe.InitializeAsync(default);
        Assert.DoesNotContain(quiet.Events, e => e.Id.Id == IdempotencyEventIds.RedisEvictionPolicyUnsafe);
    }

    protected override Task<ChargesApp> StartAppAsync(string name, TimeSpan handlerDelay)
        => RedisChargesApp.StartAsync(name, _server.EndPoint, NewPrefix("outage"), _ledger, handlerDelay, o => o.CommandTimeout = TimeSpan.FromSeconds(2));

    protected override Task StopServerAsync() => _server.StopAsync();

    protected override Task StartServerAsync() => _server.StartAsync();

    protected override ValueTask<IReadOnlyDictionary<string, long>> ChargesPerKeyAsync() => _ledger.ChargesPerKeyAsync();

    private static async Task AssertUnavailable(Func<Task> call)
        => await Assert.ThrowsAsync<IdempotencyStoreUnavailableException>(() => call().WaitAsync(HangGuard));

    private static async Task<T> WhenConnectedAsync<T>(Func<Task<T>> call)
    {
        var deadline = DateTimeOffset.UtcNow + Patience;
        while (true)
        {
            try
            {
                return await call().WaitAsync(HangGuard);
            }
            catch (IdempotencyStoreUnavailableException) when (DateTimeOffset.UtcNow < deadline)
            {
                await Task.Delay(100);
            }
        }
    }
}
