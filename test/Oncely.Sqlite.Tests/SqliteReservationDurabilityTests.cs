using Microsoft.Data.Sqlite;

namespace Oncely.Sqlite.Tests;

/// <summary>
/// Issue 20, item 3: the two-commit reservation commits with <c>synchronous = NORMAL</c> (WAL) and the completion with
/// the connection's own level. The store shares Microsoft.Data.Sqlite's pool with any application connection that uses
/// the same connection string, so the lowered level must never leave the reservation: a pooled handle comes back at
/// the level it had. (That a NORMAL commit survives a killed process is proved by the crash tests, which kill the app
/// right after a reservation and then find the record.)
/// </summary>
public sealed class SqliteReservationDurabilityTests : IDisposable
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    private readonly TemporaryDirectory _directory = new();
    private readonly string _file;

    public SqliteReservationDurabilityTests() => _file = _directory.NewDatabasePath();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task Reservation_GivesThePooledConnectionBackAtItsOwnSynchronousLevel()
    {
        var connectionString = TemporaryDirectory.ConnectionStringFor(_file);
        var store = new SqliteIdempotencyStore(new SqliteIdempotencyStoreOptions { ConnectionString = connectionString });
        await store.InitializeAsync(default);

        // The level SQLite gives a new connection in WAL mode (FULL: every commit syncs the WAL).
        long opened;
        await using (var fresh = new SqliteConnection(new SqliteConnectionStringBuilder(connectionString) { Pooling = false }.ToString()))
        {
            await fresh.OpenAsync();
            opened = await ScalarAsync(fresh, "PRAGMA synchronous;");
            Assert.Equal("wal", await TextAsync(fresh, "PRAGMA journal_mode;"));
        }

        Assert.Equal(2, opened);

        for (var i = 0; i < 20; i++)
        {
            var reserved = await store.TryReserveAsync(new IdempotencyRecordId("t", "op", "key-" + i), new string('a', 64), Minute, Hour, default);
            Assert.Equal(ReservationOutcome.Acquired, reserved.Outcome);
            Assert.True(await store.TryCompleteAsync(reserved.Record.Id, reserved.Record.FencingToken, new IdempotentResponse(201, [], new byte[] { 1 }), Hour, default));
        }

        // Every handle of the shared pool (the store opened and returned them) is at the level it had.
        var connections = new List<SqliteConnection>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                var pooled = new SqliteConnection(connectionString);
                await pooled.OpenAsync();
                connections.Add(pooled);
                Assert.Equal(opened, await ScalarAsync(pooled, "PRAGMA synchronous;"));
            }
        }
        finally
        {
            foreach (var connection in connections)
            {
                await connection.DisposeAsync();
            }
        }
    }

    private static async Task<long> ScalarAsync(SqliteConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task<string?> TextAsync(SqliteConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToString(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
