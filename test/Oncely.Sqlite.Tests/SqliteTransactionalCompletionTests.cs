using System.Data.Common;
using Microsoft.Data.Sqlite;
using Oncely.Storage.Specification;

namespace Oncely.Sqlite.Tests;

/// <summary>Transactional completion on real SQLite files: the handler's <see cref="SqliteTransaction"/> writes the record.</summary>
public sealed class SqliteTransactionalCompletionTests : TransactionalCompletionSpecification<SqliteTransaction>, IDisposable
{
    private readonly TemporaryDirectory _directory = new();
    private readonly string _database;
    private readonly string _otherDatabase;

    public SqliteTransactionalCompletionTests()
    {
        _database = TemporaryDirectory.ConnectionStringFor(_directory.NewDatabasePath());
        _otherDatabase = TemporaryDirectory.ConnectionStringFor(_directory.NewDatabasePath());
    }

    protected override async Task<IIdempotencyStore> CreateStoreAsync()
    {
        var store = new SqliteIdempotencyStore(new SqliteIdempotencyStoreOptions { ConnectionString = _database });
        await store.InitializeAsync(CancellationToken.None);
        return store;
    }

    protected override Task<DbConnection> OpenConnectionAsync() => OpenAsync(_database);

    protected override Task<DbConnection> OpenDatabaseWithoutRecordsAsync() => OpenAsync(_otherDatabase);

    [Fact]
    public async Task CompleteInTransaction_OtherDatabaseFileWithRecordsTable_FailsWithClearError()
    {
        // Another file that happens to have an Oncely schema too: the record is not there, and that is a configuration
        // mistake, not a lost lease.
        var other = new SqliteIdempotencyStore(new SqliteIdempotencyStoreOptions { ConnectionString = _otherDatabase });
        await other.InitializeAsync(CancellationToken.None);
        var executor = new IdempotencyExecutor(Store, new IdempotencyEngineOptions());
        var execution = (await executor.BeginAsync(NewId(), new string('a', 64))).Execution!;
        await using var connection = await OpenDatabaseWithoutRecordsAsync();
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync();

        var error = await Assert.ThrowsAsync<InvalidOperationException>(
            () => execution.CompleteInTransactionAsync(transaction, new IdempotentResponse(200, [], ReadOnlyMemory<byte>.Empty)).AsTask());

        Assert.Contains("same database", error.Message, StringComparison.Ordinal);
    }

    public void Dispose() => _directory.Dispose();

    private static async Task<DbConnection> OpenAsync(string connectionString)
    {
        var connection = new SqliteConnection(connectionString);
        await connection.OpenAsync();
        using var pragma = connection.CreateCommand();
        pragma.CommandText = "PRAGMA busy_timeout = 5000;";
        await pragma.ExecuteNonQueryAsync();
        return connection;
    }
}
