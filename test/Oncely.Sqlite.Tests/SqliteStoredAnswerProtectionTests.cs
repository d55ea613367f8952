using System.Data.Common;
using Microsoft.Data.Sqlite;
using Oncely.Storage.Specification;

namespace Oncely.Sqlite.Tests;

/// <summary>
/// Stored answers encrypted at rest on the SQLite store. "At rest" is the database file itself, and its write-ahead log,
/// read byte for byte: whatever table, page or log frame a plaintext answer or payload reached would show.
/// </summary>
public sealed class SqliteStoredAnswerProtectionTests : TransactionalStoredAnswerProtectionSpecification
{
    private readonly TemporaryDirectory _directory = new();
    private readonly string _path;
    private readonly string _connectionString;

    public SqliteStoredAnswerProtectionTests()
    {
        _path = _directory.NewDatabasePath();
        _connectionString = TemporaryDirectory.ConnectionStringFor(_path);
    }

    protected override async ValueTask<IIdempotencyStore> OpenStoreAsync()
    {
        var store = new SqliteIdempotencyStore(new SqliteIdempotencyStoreOptions { ConnectionString = _connectionString });
        await store.InitializeAsync(CancellationToken.None);
        return store;
    }

    protected override Task<IReadOnlyList<byte[]>> ReadAtRestAsync()
    {
        var held = new List<byte[]>();
        foreach (var path in new[] { _path, _path + "-wal", _path + "-journal" })
        {
            if (File.Exists(path))
            {
                using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                using var copy = new MemoryStream();
                file.CopyTo(copy);
                held.Add(copy.ToArray());
            }
        }

        return Task.FromResult<IReadOnlyList<byte[]>>(held);
    }

    protected override async Task CompleteInTransactionAsync(IdempotencyExecution execution, IdempotentResponse answer)
    {
        await using var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync();
        await using DbTransaction transaction = await connection.BeginTransactionAsync();
        await execution.ReserveInTransactionAsync(transaction);
        await using (var command = connection.CreateCommand())
        {
            command.Transaction = (SqliteTransaction)transaction;
            command.CommandText = "CREATE TABLE IF NOT EXISTS protected_payments (idem_key TEXT NOT NULL); INSERT INTO protected_payments (idem_key) VALUES ($key)";
            command.Parameters.AddWithValue("$key", execution.Id.Key);
            await command.ExecuteNonQueryAsync();
        }

        await execution.CompleteInTransactionAsync(transaction, answer);
        await transaction.CommitAsync();
    }

    public override void Dispose()
    {
        SqliteConnection.ClearAllPools();
        _directory.Dispose();
        base.Dispose();
    }
}
