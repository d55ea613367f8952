using System.Data.Common;
using Microsoft.Data.Sqlite;
using Oncely.Storage.Specification;

namespace Oncely.Sqlite.Tests;

/// <summary>One-commit reservation on real SQLite files: the handler's <see cref="SqliteTransaction"/> reserves the record.</summary>
public sealed class SqliteOneCommitReservationTests : OneCommitReservationSpecification, IDisposable
{
    private readonly TemporaryDirectory _directory = new();
    private readonly string _database;

    public SqliteOneCommitReservationTests() => _database = TemporaryDirectory.ConnectionStringFor(_directory.NewDatabasePath());

    protected override async Task<IIdempotencyStore> CreateStoreAsync()
    {
        var store = new SqliteIdempotencyStore(new SqliteIdempotencyStoreOptions { ConnectionString = _database });
        await store.InitializeAsync(CancellationToken.None);
        return store;
    }

    protected override async Task<DbConnection> OpenConnectionAsync()
    {
        var connection = new SqliteConnection(_database);
        await connection.OpenAsync();
        using var pragma = connection.CreateCommand();
        pragma.CommandText = "PRAGMA busy_timeout = 10000;";
        await pragma.ExecuteNonQueryAsync();
        return connection;
    }

    public void Dispose() => _directory.Dispose();
}
