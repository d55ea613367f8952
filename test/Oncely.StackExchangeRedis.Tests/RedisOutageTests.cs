using System.Collections.Concurrent;
using System.Net;
using Oncely.StackExchangeRedis.Tests.Infrastructure;
using Xunit.Abstractions;
using static Oncely.StackExchangeRedis.Tests.Infrastructure.StoreFactory;

namespace Oncely.StackExchangeRedis.Tests;

[CollectionDefinition(Name)]
public sealed class OutageCollection
{
    public const string Name = "Redis outage";
}

/// <summary>
/// Stops, pauses and restarts a server, so it uses a server of its own (with an append-only file, so a stop and start
/// keeps the data, as a restarted production server does): the shared ones keep serving the other classes.
/// </summary>
[Collection(OutageCollection.Name)]
public sealed class RedisOutageTests(PrivateRedisFixture fixture, ITestOutputHelper output) : IClassFixture<PrivateRedisFixture>
{
    private const long Amount = 250;
    private const int Workers = 4;
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    private readonly RedisServer _server = fixture.Server;

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

    [Fact]
    public async Task ChargeTraffic_ServerStoppedThenRestarted_FailsClosedThenRecoversWithoutDoubleCharges()
    {
        // Default lease (30 s): far longer than this test, so no record whose completion was cut by the stop is taken over.
        var ledger = new Ledger();
        await using var app = await ChargesApp.StartAsync("outage-app", _server.EndPoint, NewPrefix("outage"), ledger, TimeSpan.FromMilliseconds(30), o => o.CommandTimeout = TimeSpan.FromSeconds(2));
        var completedBefore = await app.SendAsync(Key("before"), Amount);
        Assert.True(completedBefore.IsExecution, completedBefore.ToString());

        var traffic = new ConcurrentQueue<ChargesApp.Answer>();
        using var stopTraffic = new CancellationTokenSource();
        var workers = Enumerable.Range(0, Workers).Select(w => Task.Run(async () =>
        {
            for (var n = 0; !stopTraffic.IsCancellationRequested; n++)
            {
                traffic.Enqueue(await app.SendAsync(Key($"traffic-{w}-{n}"), Amount));
                await Task.Delay(20);
            }
        })).ToArray();

        try
        {
            await WaitUntilAsync(() => traffic.Count(a => a.IsExecution) >= 20, "traffic executes before the outage");
            var stopRequested = DateTimeOffset.UtcNow;
            await _server.StopAsync();
            var stopped = DateTimeOffset.UtcNow;
            await Task.Delay(TimeSpan.FromMilliseconds(300));
            var runsWhileDown = app.HandlerRuns;

            var down = new List<ChargesApp.Answer>();
            for (var i = 0; i < 20; i++)
            {
                down.Add(await app.SendAsync(Key($"down-{i}"), Amount));
            }

            var replayWhileDown = await app.SendAsync(completedBefore.Key, Amount);
            await Task.Delay(TimeSpan.FromMilliseconds(300));
            var restarting = DateTimeOffset.UtcNow;
            Assert.All(down, AssertUnavailable);
            AssertUnavailable(replayWhileDown);
            var trafficWhileDown = traffic.Where(a => a.Started >= stopped && a.Finished < restarting).ToArray();
            Assert.True(trafficWhileDown.Length >= Workers, $"only {trafficWhileDown.Length} traffic requests ran while the server was down");
            Assert.All(trafficWhileDown, AssertUnavailable);
            Assert.Equal(runsWhileDown, app.HandlerRuns); // fail closed: no handler ran while the store was down

            await _server.StartAsync();
            var restarted = DateTimeOffset.UtcNow;
            await WaitUntilAsync(() => traffic.Count(a => a.Started >= restarted && a.IsExecution) >= 10, "traffic executes after the restart");
            await stopTraffic.CancelAsync();
            await Task.WhenAll(workers);

            var answers = traffic.Append(completedBefore).Concat(down).Append(replayWhileDown).ToArray();
            ChargesApp.AssertReplay(completedBefore, await app.SendAsync(completedBefore.Key, Amount));

            // Executions before the stop replay, unless the stop cut their completion (then the record stays InProgress
            // for its lease and answers 409; it never runs again within the lease).
            var executedBefore = answers.Where(a => a.IsExecution && a.Started < stopRequested).ToArray();
            var inProgress = 0;
            foreach (var execution in executedBefore)
            {
                var retry = await app.SendAsync(execution.Key, Amount);
                if (retry.Status == HttpStatusCode.Conflict)
                {
                    inProgress++;
                }

                ChargesApp.AssertReplayOrInProgress(execution, retry);
                Assert.True(retry.Replayed || execution.Finished > stopRequested - TimeSpan.FromMilliseconds(250), $"{execution} finished well before the stop but its retry answered {retry}");
            }

            Assert.InRange(inProgress, 0, 2 * Workers);

            // Keys refused while the server was down never reserved anything: retried now, each executes once.
            var refusedWhileDown = answers.Where(a => a.Status == HttpStatusCode.ServiceUnavailable && a.Started >= stopped).Select(a => a.Key).Distinct().ToArray();
            Assert.NotEmpty(refusedWhileDown);
            var retried = await Task.WhenAll(refusedWhileDown.Select(key => app.SendAsync(key, Amount)));
            Assert.All(retried, a => Assert.True(a.IsExecution || a.Key == completedBefore.Key, a.ToString()));

            Assert.All(ledger.Charges, pair => Assert.True(pair.Value == 1, $"{pair.Key} was charged {pair.Value} times"));
            var executed = answers.Concat(retried).Where(a => a.IsExecution).ToArray();
            Assert.Equal(executed.Length, executed.Select(a => a.Key).Distinct().Count());
            output.WriteLine($"traffic: {traffic.Count} requests, {string.Join(", ", traffic.GroupBy(a => (int)a.Status).OrderBy(g => g.Key).Select(g => $"{g.Key}: {g.Count()}"))}; "
                + $"while down: {trafficWhileDown.Length} traffic + {down.Count + 1} explicit, all 503; executed before the stop: {executedBefore.Length} ({inProgress} still in progress); "
                + $"recovered {(traffic.Where(a => a.Started >= restarted && a.IsExecution).Min(a => a.Started) - restarted).TotalMilliseconds:F0} ms after the restart");
        }
        finally
        {
            await stopTraffic.CancelAsync();
            await Task.WhenAll(workers);
        }
    }

    private static void AssertUnavailable(ChargesApp.Answer answer)
    {
        Assert.True(answer.Status == HttpStatusCode.ServiceUnavailable, answer.ToString());
        Assert.Equal("idempotency-store-unavailable", answer.ProblemType);
        Assert.NotNull(answer.RetryAfter);
        Assert.False(answer.Replayed);
    }

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

    private static string Key(string label) => $"{label}-{Guid.NewGuid():N}";

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTimeOffset.UtcNow + Patience;
        while (!condition())
        {
            Assert.True(DateTimeOffset.UtcNow < deadline, $"Timed out waiting until {what}.");
            await Task.Delay(50);
        }
    }
}
