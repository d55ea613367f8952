using System.Diagnostics;
using Microsoft.Data.Sqlite;

namespace Oncely.Sqlite.Tests;

/// <summary>
/// Issue 10, decision-table row 20: a retry of a Completed request (and an in-progress duplicate, and a reused key) is
/// answered from a read, which in WAL mode neither waits for the writer nor writes the file; and a store that cannot get
/// the write lock gives up within its timeout without holding thread-pool threads while it waits.
/// The class runs alone (its timing probes must not share the two cores with other classes' racers).
/// </summary>
[Collection(SqliteTimingCollection.Name)]
public sealed class SqliteReplayIsReadTests : IDisposable
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    private readonly TemporaryDirectory _directory = new();
    private readonly string _file;

    public SqliteReplayIsReadTests() => _file = _directory.NewDatabasePath();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task Replay_WhileAnotherConnectionHoldsTheWriteLock_AnswersAtOnceAndWritesNothing()
    {
        var store = await CreateStoreAsync(TimeSpan.FromSeconds(5));
        var completed = Id("completed");
        var running = Id("running");
        var reserved = await store.TryReserveAsync(completed, Fingerprint('a'), Minute, Hour, default);
        Assert.True(await store.TryCompleteAsync(completed, reserved.Record.FencingToken, new IdempotentResponse(201, [], new byte[] { 1, 2, 3 }), Hour, default));
        Assert.Equal(ReservationOutcome.Acquired, (await store.TryReserveAsync(running, Fingerprint('a'), Minute, Hour, default)).Outcome);

        await using var observer = await OpenAsync();
        var versionBefore = await ScalarAsync(observer, "PRAGMA data_version;");
        var walBefore = new FileInfo(_file + "-wal").Length;
        await using var blocker = await OpenAsync();
        await ExecuteAsync(blocker, "BEGIN IMMEDIATE;");

        var clock = Stopwatch.StartNew();
        for (var i = 0; i < 200; i++)
        {
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            Assert.Equal(ReservationOutcome.Completed, (await store.TryReserveAsync(completed, Fingerprint('a'), Minute, Hour, bound.Token)).Outcome);
            Assert.Equal(ReservationOutcome.InProgress, (await store.TryReserveAsync(running, Fingerprint('a'), Minute, Hour, bound.Token)).Outcome);
            Assert.Equal(ReservationOutcome.FingerprintMismatch, (await store.TryReserveAsync(completed, Fingerprint('b'), Minute, Hour, bound.Token)).Outcome);
        }

        clock.Stop();
        await ExecuteAsync(blocker, "ROLLBACK;");

        // 600 answers while the write lock was held: none waited for it (the busy budget is 5 s; one wait would show).
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"600 reads took {clock.Elapsed} with the write lock held");

        // data_version changes when another connection commits a change to the file; the WAL grows on every commit.
        Assert.Equal(versionBefore, await ScalarAsync(observer, "PRAGMA data_version;"));
        Assert.Equal(walBefore, new FileInfo(_file + "-wal").Length);
    }

    [Fact]
    public async Task Reserve_NewKeyWhileWriteLockHeldPastBusyTimeout_FailsClosedWithinAboutTheTimeout()
    {
        var store = await CreateStoreAsync(TimeSpan.FromMilliseconds(500));
        await using var blocker = await OpenAsync();
        await ExecuteAsync(blocker, "BEGIN IMMEDIATE;");

        var clock = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<IdempotencyStoreUnavailableException>(async () => await store.TryReserveAsync(Id("new"), Fingerprint('a'), Minute, Hour, default));
        clock.Stop();

        Assert.Contains("BusyTimeout", error.Message, StringComparison.Ordinal);
        // It waited for the lock, then gave up (Microsoft.Data.Sqlite retries locks in whole seconds); it did not hang.
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(400), TimeSpan.FromSeconds(6));
        await ExecuteAsync(blocker, "ROLLBACK;");
        Assert.Equal(ReservationOutcome.Acquired, (await store.TryReserveAsync(Id("new"), Fingerprint('a'), Minute, Hour, default)).Outcome);
    }

    [Fact]
    public async Task Begin_FiftyNewKeysWhileWriteLockHeldPastStoreTimeout_AllFailClosedOnTimeAndThreadPoolKeepsRunning()
    {
        // BusyTimeout is long on purpose: the engine's StoreTimeout is what must hold (the 503 path).
        var store = await CreateStoreAsync(TimeSpan.FromSeconds(30));
        var storeTimeout = TimeSpan.FromSeconds(1);
        var executor = new IdempotencyExecutor(store, new IdempotencyEngineOptions { StoreTimeout = storeTimeout, RenewLease = false });

        // Warm up what a first request pays once (JIT, fifty physical connections in the pool), so the probe below
        // measures waiting on the lock and nothing else.
        await Task.WhenAll(Enumerable.Range(0, 50).Select(i => Task.Run(async () => await executor.BeginAsync(Id($"warm-{i}"), Fingerprint('a')))));
        await using var blocker = await OpenAsync();
        await ExecuteAsync(blocker, "BEGIN IMMEDIATE;");

        // A probe that needs the thread pool every 10 ms: starved threads would show as late ticks.
        using var stopProbe = new CancellationTokenSource();
        var clock = Stopwatch.StartNew();
        var probe = Task.Run(async () =>
        {
            var worst = TimeSpan.Zero;
            var at = TimeSpan.Zero;
            while (!stopProbe.IsCancellationRequested)
            {
                var tick = Stopwatch.StartNew();
                await Task.Delay(10);
                if (tick.Elapsed > worst)
                {
                    worst = tick.Elapsed;
                    at = clock.Elapsed;
                }
            }

            return (worst, at);
        });

        var decisions = await Task.WhenAll(Enumerable.Range(0, 50).Select(i => Task.Run(async () =>
        {
            var decision = await executor.BeginAsync(Id($"new-{i}"), Fingerprint('a'));
            return (decision.Kind, Elapsed: clock.Elapsed);
        })));
        await stopProbe.CancelAsync();
        var (worstTick, worstAt) = await probe;
        await ExecuteAsync(blocker, "ROLLBACK;");

        // Which timeout ended the wait, not how fast the machine is: every caller waited for the lock (at least the
        // StoreTimeout) and was released by the StoreTimeout, far before the 30 s BusyTimeout (a CI machine running
        // other test projects in parallel may add a second or two of scheduling, never tens).
        Assert.All(decisions, d =>
        {
            Assert.Equal(IdempotencyDecisionKind.StoreUnavailable, d.Kind);
            Assert.InRange(d.Elapsed, storeTimeout - TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(10));
        });

        // Fifty callers blocking pool threads on the lock would starve it for many seconds (the pool adds threads slowly).
        Assert.True(worstTick < TimeSpan.FromSeconds(2), $"a 10 ms timer fired {worstTick} late at {worstAt}: the thread pool was starved");
    }

    private async Task<SqliteIdempotencyStore> CreateStoreAsync(TimeSpan busyTimeout)
    {
        var store = new SqliteIdempotencyStore(new SqliteIdempotencyStoreOptions { ConnectionString = TemporaryDirectory.ConnectionStringFor(_file), BusyTimeout = busyTimeout });
        await store.InitializeAsync(default);
        return store;
    }

    private async Task<SqliteConnection> OpenAsync()
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = _file, Pooling = false }.ToString());
        await connection.OpenAsync();
        return connection;
    }

    private static async Task ExecuteAsync(SqliteConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<long> ScalarAsync(SqliteConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static IdempotencyRecordId Id(string key) => new("tenant", "POST /payments", key);

    private static string Fingerprint(char c) => new(c, 64);
}

/// <summary>Test classes that measure time and thread-pool health: run with no other class in parallel.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SqliteTimingCollection
{
    public const string Name = "SqliteTiming";
}
