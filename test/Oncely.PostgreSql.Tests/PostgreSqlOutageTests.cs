using Npgsql;
using Oncely.PostgreSql.Tests.Infrastructure;

namespace Oncely.PostgreSql.Tests;

/// <summary>
/// Stops and restarts a server, so it uses a server of its own: the shared one keeps serving the other classes.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlOutageTests(PrivatePostgresFixture fixture) : IClassFixture<PrivatePostgresFixture>, IAsyncLifetime
{
    // Far above the 2-second command timeout the stores here use: only a hang would reach it.
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);
    private static readonly string Fingerprint = new('a', 64);

    private readonly PostgresServer _server = fixture.Server;
    private NpgsqlDataSource _dataSource = null!;
    private string _database = "";

    public async Task InitializeAsync()
    {
        _database = await _server.CreateDatabaseAsync("outage");
        _dataSource = _server.CreateDataSource(_database);
    }

    public async Task DisposeAsync()
    {
        await _dataSource.DisposeAsync();
    }

    [Fact]
    public async Task EveryOperation_ServerStopped_ThrowsUnavailableThenWorksAfterRestart()
    {
        await using var store = CreateStore(_dataSource);
        var id = NewId();
        var held = await store.TryReserveAsync(id, Fingerprint, Minute, Hour, default);

        await _server.StopServerAsync();
        try
        {
            await AssertUnavailable(() => store.TryReserveAsync(NewId(), Fingerprint, Minute, Hour, default).AsTask());
            await AssertUnavailable(() => store.TryCompleteAsync(id, held.Record.FencingToken, new IdempotentResponse(200, [], new byte[] { 1 }), Hour, default).AsTask());
            await AssertUnavailable(() => store.TryReleaseAsync(id, held.Record.FencingToken, default).AsTask());
            await AssertUnavailable(() => store.TrySetRecoveryPointAsync(id, held.Record.FencingToken, "p", Minute, default).AsTask());
            await AssertUnavailable(() => store.GetAsync(id, default).AsTask());
            await AssertUnavailable(() => store.PurgeExpiredAsync(10, default).AsTask());
            await AssertUnavailable(() => store.AppendAsync(new KeyReuseAuditEntry(id, Fingerprint, Fingerprint, "", DateTimeOffset.UnixEpoch), default).AsTask());
        }
        finally
        {
            await _server.StartServerAsync();
        }

        Assert.True(await store.TryCompleteAsync(id, held.Record.FencingToken, new IdempotentResponse(200, [], new byte[] { 1 }), Hour, default).AsTask().WaitAsync(HangGuard));
        var replay = await store.TryReserveAsync(id, Fingerprint, Minute, Hour, default);
        Assert.Equal(ReservationOutcome.Completed, replay.Outcome);
    }

    [Fact]
    public async Task InitializeAsync_ServerStopped_ThrowsUnavailableThenInitializesAfterRestart()
    {
        await using var store = CreateStore(_dataSource, o => o.Schema = "late");

        await _server.StopServerAsync();
        try
        {
            await AssertUnavailable(() => store.InitializeAsync(default).AsTask());
            await AssertUnavailable(() => store.TryReserveAsync(NewId(), Fingerprint, Minute, Hour, default).AsTask());
        }
        finally
        {
            await _server.StartServerAsync();
        }

        var reservation = await store.TryReserveAsync(NewId(), Fingerprint, Minute, Hour, default).AsTask().WaitAsync(HangGuard);
        Assert.Equal(ReservationOutcome.Acquired, reservation.Outcome);
    }

    [Fact]
    public async Task TryReserveAsync_RowLockedLongerThanCommandTimeout_ThrowsUnavailable()
    {
        await using var store = CreateStore(_dataSource);
        var id = NewId();
        var held = await store.TryReserveAsync(id, Fingerprint, TimeSpan.FromSeconds(1), Hour, default);
        await Task.Delay(TimeSpan.FromMilliseconds(1500)); // the lease lapses, so the next reserve must lock the row to take it over

        await using var blocker = await _dataSource.OpenConnectionAsync();
        await using var transaction = await blocker.BeginTransactionAsync();
        await using (var lockRow = new NpgsqlCommand($"SELECT 1 FROM {store.Schema.Table} WHERE idem_key = @key FOR UPDATE", blocker, transaction))
        {
            lockRow.Parameters.AddWithValue("key", id.Key);
            await lockRow.ExecuteScalarAsync();
        }

        await AssertUnavailable(() => store.TryReserveAsync(id, Fingerprint, Minute, Hour, default).AsTask());
        await transaction.RollbackAsync();

        var takeOver = await store.TryReserveAsync(id, Fingerprint, Minute, Hour, default);
        Assert.Equal(ReservationOutcome.TakenOver, takeOver.Outcome);
        Assert.NotEqual(held.Record.FencingToken, takeOver.Record.FencingToken);
    }

    /// <summary>
    /// Issue 20, item 3: the two-commit reservation stays a durable commit (<c>synchronous_commit</c> as the server has
    /// it, never lowered for the reservation): records reserved right before the server crashes (<c>pg_ctl stop -m
    /// immediate</c>: no shutdown checkpoint, WAL buffers not yet written are lost) are all there after the restart with
    /// their fencing tokens, and the sequence hands out larger ones after it, so a worker still running with a token
    /// from before the crash can never meet its token on another attempt's record.
    /// </summary>
    [Fact]
    public async Task Reservations_ServerCrashesRightAfter_AreAllThereWithTheirTokensAndNewTokensAreLarger()
    {
        await using var store = CreateStore(_dataSource);
        var reserved = new List<(IdempotencyRecordId Id, long Token)>();
        for (var i = 0; i < 20; i++)
        {
            var id = NewId();
            var reservation = await store.TryReserveAsync(id, Fingerprint, Minute, Hour, default).AsTask().WaitAsync(HangGuard);
            Assert.Equal(ReservationOutcome.Acquired, reservation.Outcome);
            reserved.Add((id, reservation.Record.FencingToken));
        }

        await _server.StopServerAsync();
        await _server.StartServerAsync();

        // The pool's connections died with the server: the first call may fail as unavailable (and clears the pool).
        IdempotencyRecord? first = null;
        for (var attempt = 0; attempt < 20 && first is null; attempt++)
        {
            try
            {
                first = await store.GetAsync(reserved[0].Id, default).AsTask().WaitAsync(HangGuard);
                Assert.NotNull(first);
            }
            catch (IdempotencyStoreUnavailableException)
            {
                await Task.Delay(100);
            }
        }

        foreach (var (id, token) in reserved)
        {
            var record = await store.GetAsync(id, default).AsTask().WaitAsync(HangGuard);
            Assert.NotNull(record);
            Assert.Equal(IdempotencyRecordState.InProgress, record.State);
            Assert.Equal(token, record.FencingToken);
        }

        var after = await store.TryReserveAsync(NewId(), Fingerprint, Minute, Hour, default).AsTask().WaitAsync(HangGuard);
        Assert.True(after.Record.FencingToken > reserved.Max(r => r.Token), $"token {after.Record.FencingToken} after the crash, {reserved.Max(r => r.Token)} before");
    }

    private static async Task AssertUnavailable(Func<Task> operation)
    {
        var ex = await Assert.ThrowsAsync<IdempotencyStoreUnavailableException>(() => operation().WaitAsync(HangGuard));
        Assert.NotNull(ex.InnerException);
    }

    private static PostgreSqlIdempotencyStore CreateStore(NpgsqlDataSource dataSource, Action<PostgreSqlIdempotencyStoreOptions>? configure = null)
        => StoreTestBase.CreateStore(dataSource, o =>
        {
            o.CommandTimeout = TimeSpan.FromSeconds(2);
            configure?.Invoke(o);
        });

    private static IdempotencyRecordId NewId() => new("tenant", "POST /payments", Guid.NewGuid().ToString("N"));
}
