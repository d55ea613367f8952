using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Time.Testing;

namespace Oncely.Sqlite.Tests;

/// <summary>
/// The SQLite store's count of attempts beyond the shared specification: a database file written by an earlier build
/// (the <c>attempts</c> column has been in the schema since version 1), the one-commit reservation and erasure's report.
/// </summary>
public sealed class SqliteAttemptsTests : IDisposable
{
    private const string Fingerprint = "a3f1c0de4b5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
    private static readonly TimeSpan Lease = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan Expiration = TimeSpan.FromHours(1);
    private static readonly CancellationToken None = CancellationToken.None;

    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero));
    private readonly TemporaryDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task ExistingFile_WrittenByAnEarlierBuild_OpensWithoutMigration_StoredCountsRead_TakeOverAddsOne()
    {
        // A file as an earlier Oncely.Sqlite left it: the released migrations (which never change), its version, and
        // rows whose attempts that build's reservation upsert had already counted.
        var file = _directory.NewDatabasePath();
        var now = _clock.GetUtcNow().ToUnixTimeMilliseconds();
        await using (var connection = new SqliteConnection(TemporaryDirectory.ConnectionStringFor(file)))
        {
            await connection.OpenAsync();
            foreach (var migration in SqliteSchema.Migrations("oncely_records", "oncely_key_reuse_audit"))
            {
                await ExecuteAsync(connection, migration);
            }

            await ExecuteAsync(connection, $"""
                CREATE TABLE oncely_schema_version (component TEXT NOT NULL PRIMARY KEY, version INTEGER NOT NULL, applied_at INTEGER NOT NULL);
                INSERT INTO oncely_schema_version VALUES ('oncely_records', {SqliteSchema.CurrentVersion}, {now - 86_400_000});
                INSERT INTO oncely_records (tenant, operation, idem_key, fingerprint, state, fencing_token, attempts, lease_expires_at, expires_at, recovery_point, created_at)
                VALUES ('t', 'POST /payments', 'stuck', '{Fingerprint}', 0, 42, 3, {now - 1}, {now + 3_600_000}, 'funds-held', {now - 600_000});
                INSERT INTO oncely_records (tenant, operation, idem_key, fingerprint, state, fencing_token, attempts, lease_expires_at, expires_at, status_code, headers, body, created_at)
                VALUES ('t', 'POST /payments', 'done', '{Fingerprint}', 1, 41, 2, {now - 1}, {now + 3_600_000}, 201, '[]', x'7b7d', {now - 700_000});
                """);
        }

        var store = new SqliteIdempotencyStore(new SqliteIdempotencyStoreOptions { ConnectionString = TemporaryDirectory.ConnectionStringFor(file) }, _clock);
        var stuck = new IdempotencyRecordId("t", "POST /payments", "stuck");
        var done = new IdempotencyRecordId("t", "POST /payments", "done");

        Assert.Equal(3, (await store.GetAsync(stuck, None))?.Attempts);
        Assert.Equal(2, (await store.GetAsync(done, None))?.Attempts);
        Assert.Equal(2, (await store.TryReserveAsync(done, Fingerprint, Lease, Expiration, None)).Record.Attempts); // a replay
        Assert.Equal(3, Assert.Single(await store.FindByKeyAsync("t", "stuck", None)).Attempts);
        var listed = await store.ListRecordsAsync(new IdempotencyRecordQuery { Tenant = "t", Limit = 10 }, None);
        Assert.Equal([("stuck", 3), ("done", 2)], listed.Records.Select(r => (r.Id.Key, r.Attempts)));

        var takenOver = await store.TryReserveAsync(stuck, Fingerprint, Lease, Expiration, None);
        Assert.Equal(ReservationOutcome.TakenOver, takenOver.Outcome);
        Assert.Equal(4, takenOver.Record.Attempts);
        Assert.True(takenOver.Record.FencingToken > 42);
        Assert.Equal("funds-held", takenOver.Record.RecoveryPoint);
        Assert.Equal(4, (await store.GetAsync(stuck, None))?.Attempts);

        await using var check = new SqliteConnection(TemporaryDirectory.ConnectionStringFor(file));
        await check.OpenAsync();
        await using var version = check.CreateCommand();
        version.CommandText = "SELECT version FROM oncely_schema_version WHERE component = 'oncely_records';";
        Assert.Equal((long)SqliteSchema.CurrentVersion, await version.ExecuteScalarAsync());
    }

    [Fact]
    public async Task Schema_AttemptsColumn_IsAnIntegerThatCannotBeNull()
    {
        var file = _directory.NewDatabasePath();
        await new SqliteIdempotencyStore(new SqliteIdempotencyStoreOptions { ConnectionString = TemporaryDirectory.ConnectionStringFor(file) }, _clock).InitializeAsync(None);

        await using var connection = new SqliteConnection(TemporaryDirectory.ConnectionStringFor(file));
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT type, \"notnull\" FROM pragma_table_info('oncely_records') WHERE name = 'attempts';";
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal(("INTEGER", 1L), (reader.GetString(0), reader.GetInt64(1)));
    }

    [Fact]
    public async Task OneCommitReservation_TakeOverInTheHandlersTransaction_CountsOnlyOnceCommitted()
    {
        var file = _directory.NewDatabasePath();
        var connectionString = TemporaryDirectory.ConnectionStringFor(file);
        var store = new SqliteIdempotencyStore(new SqliteIdempotencyStoreOptions { ConnectionString = connectionString }, _clock);
        await store.InitializeAsync(None); // as the host does at start: the handler's transaction needs the table
        var id = new IdempotencyRecordId("t", "POST /payments", Guid.NewGuid().ToString());

        var first = await ReserveInTransactionAsync(store, connectionString, id, commit: true);
        Assert.Equal((ReservationOutcome.Acquired, 1), (first.Outcome, first.Record!.Attempts));

        // The holder stops renewing; a take-over in a transaction that rolls back leaves the count where it was.
        _clock.Advance(Lease + TimeSpan.FromSeconds(1));
        var rolledBack = await ReserveInTransactionAsync(store, connectionString, id, commit: false);
        Assert.Equal((ReservationOutcome.TakenOver, 2), (rolledBack.Outcome, rolledBack.Record!.Attempts));
        Assert.Equal(1, (await store.GetAsync(id, None))?.Attempts);

        var committed = await ReserveInTransactionAsync(store, connectionString, id, commit: true);
        Assert.Equal((ReservationOutcome.TakenOver, 2), (committed.Outcome, committed.Record!.Attempts));
        Assert.Equal(2, (await store.GetAsync(id, None))?.Attempts);
    }

    [Fact]
    public async Task EraseKey_RecordTakenOver_ReportsTheInProgressRecordWithItsAttempts()
    {
        var store = new SqliteIdempotencyStore(new SqliteIdempotencyStoreOptions { ConnectionString = TemporaryDirectory.ConnectionStringFor(_directory.NewDatabasePath()) }, _clock);
        var id = new IdempotencyRecordId("t", "POST /payments", Guid.NewGuid().ToString());
        Assert.Equal(ReservationOutcome.Acquired, (await store.TryReserveAsync(id, Fingerprint, Lease, Expiration, None)).Outcome);
        _clock.Advance(Lease + TimeSpan.FromSeconds(1));
        Assert.Equal(ReservationOutcome.TakenOver, (await store.TryReserveAsync(id, Fingerprint, Lease, Expiration, None)).Outcome);

        var erased = await store.EraseKeyAsync(id.Tenant, id.Key, None);

        var held = Assert.Single(erased.InProgress);
        Assert.Equal((id, 2), (held.Id, held.Attempts));
    }

    private static async Task<TransactionalReservationResult> ReserveInTransactionAsync(SqliteIdempotencyStore store, string connectionString, IdempotencyRecordId id, bool commit)
    {
        await using var connection = new SqliteConnection(connectionString);
        await connection.OpenAsync();
        await using var transaction = connection.BeginTransaction(deferred: false);
        var result = await store.TryReserveAsync(transaction, id, Fingerprint, Lease, Expiration, TimeSpan.FromSeconds(5), None);
        if (commit)
        {
            await transaction.CommitAsync();
        }
        else
        {
            await transaction.RollbackAsync();
        }

        return result;
    }

    private static async Task ExecuteAsync(SqliteConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }
}
