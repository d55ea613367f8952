using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Time.Testing;

namespace Oncely.Sqlite.Tests;

/// <summary>What the administration capability needs from the SQLite schema (the conformance suite covers its behaviour).</summary>
public sealed class SqliteStoreAdministrationTests : IDisposable
{
    private readonly TemporaryDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task ListRecords_InProgressOnly_ReadsThePartialIndexNotTheTable()
    {
        var file = _directory.NewDatabasePath();
        var store = new SqliteIdempotencyStore(new SqliteIdempotencyStoreOptions { ConnectionString = TemporaryDirectory.ConnectionStringFor(file) }, new FakeTimeProvider());
        await store.InitializeAsync(CancellationToken.None);

        var inProgress = await PlanAsync(file, SqliteIdempotencyStore.ListRecordsSql("oncely_records", new() { State = IdempotencyRecordState.InProgress }));
        var stuckOlderThan = await PlanAsync(file, SqliteIdempotencyStore.ListRecordsSql("oncely_records", new() { State = IdempotencyRecordState.InProgress, CreatedBefore = DateTimeOffset.UnixEpoch }));

        Assert.Contains("USING INDEX oncely_records_in_progress", inProgress, StringComparison.Ordinal);
        Assert.Contains("USING INDEX oncely_records_in_progress", stuckOlderThan, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Initialize_DatabaseAtVersion1_AddsTheIndexOfInProgressRecords()
    {
        var file = _directory.NewDatabasePath();
        await using (var connection = new SqliteConnection(TemporaryDirectory.ConnectionStringFor(file)))
        {
            await connection.OpenAsync();
            using var create = connection.CreateCommand();
            create.CommandText = SqliteSchema.Migrations("oncely_records", "oncely_key_reuse_audit")[0]
                + """
                  CREATE TABLE oncely_schema_version (component TEXT NOT NULL PRIMARY KEY, version INTEGER NOT NULL, applied_at INTEGER NOT NULL);
                  INSERT INTO oncely_schema_version VALUES ('oncely_records', 1, 0);
                  """;
            await create.ExecuteNonQueryAsync();
        }

        var store = new SqliteIdempotencyStore(new SqliteIdempotencyStoreOptions { ConnectionString = TemporaryDirectory.ConnectionStringFor(file) }, new FakeTimeProvider());
        await store.InitializeAsync(CancellationToken.None);

        Assert.Equal("oncely_records_in_progress", await ScalarAsync(file, "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'oncely_records_in_progress'"));
        Assert.Equal(2L, await ScalarAsync(file, "SELECT version FROM oncely_schema_version WHERE component = 'oncely_records'"));
    }

    private static async Task<string> PlanAsync(string file, string sql)
    {
        await using var connection = new SqliteConnection(TemporaryDirectory.ConnectionStringFor(file));
        await connection.OpenAsync();
        using var command = connection.CreateCommand();
        command.CommandText = "EXPLAIN QUERY PLAN " + sql;
        foreach (var name in new[] { "@now", "@limit", "@created_before" })
        {
            command.Parameters.AddWithValue(name, 0);
        }
        var plan = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            plan.Add(reader.GetString(3));
        }

        return string.Join(" | ", plan);
    }

    private static async Task<object?> ScalarAsync(string file, string sql)
    {
        await using var connection = new SqliteConnection(TemporaryDirectory.ConnectionStringFor(file));
        await connection.OpenAsync();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return await command.ExecuteScalarAsync();
    }
}
