using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Oncely.PostgreSql.Tests.Infrastructure;
using Oncely.Sqlite;

namespace Oncely.PostgreSql.Tests;

/// <summary>
/// Issue 9, item 15: transactional completion dispatches on the transaction's runtime type. A transaction of another
/// driver than the store's is refused with an <see cref="InvalidOperationException"/> naming what was received and
/// what the store needs; nothing is written. Both drivers are real here: PostgreSQL and a SQLite file.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class TransactionDriverMismatchTests(PostgresFixture fixture) : StoreTestBase(fixture), IDisposable
{
    private readonly string _sqliteFile = Path.Combine(Path.GetTempPath(), $"oncely-mismatch-{Guid.NewGuid():N}.db");

    [Fact]
    public async Task CompleteInTransaction_PostgreSqlStoreGivenSqliteTransaction_ThrowsNamingBothTypes()
    {
        var executor = new IdempotencyExecutor(Store, new IdempotencyEngineOptions());
        var id = NewId();
        await using var execution = (await executor.BeginAsync(id, Fingerprint('a'))).Execution!;
        await using var connection = new SqliteConnection($"Data Source={_sqliteFile};Pooling=False");
        await connection.OpenAsync();
        await using var transaction = await connection.BeginTransactionAsync();

        var error = await Assert.ThrowsAsync<InvalidOperationException>(
            async () => await execution.CompleteInTransactionAsync(transaction, new IdempotentResponse(201, [], new byte[] { 1 })));

        Assert.Contains("Microsoft.Data.Sqlite.SqliteTransaction", error.Message, StringComparison.Ordinal);
        Assert.Contains("Npgsql.NpgsqlTransaction", error.Message, StringComparison.Ordinal);
        Assert.False(execution.CompletedInTransaction);
        Assert.Equal(IdempotencyRecordState.InProgress, (await Store.GetAsync(id, default))!.State);
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await execution.SetRecoveryPointInTransactionAsync(transaction, "phase"));
    }

    [Fact]
    public async Task CompleteInTransaction_SqliteStoreGivenNpgsqlTransaction_ThrowsNamingBothTypes()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddIdempotency().UseSqlite($"Data Source={_sqliteFile};Pooling=False");
        await using var provider = services.BuildServiceProvider();
        var executor = provider.GetRequiredService<IdempotencyExecutor>();
        var id = NewId();
        await using var execution = (await executor.BeginAsync(id, Fingerprint('a'))).Execution!;
        await using var connection = await DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();

        var error = await Assert.ThrowsAsync<InvalidOperationException>(
            async () => await execution.CompleteInTransactionAsync(transaction, new IdempotentResponse(201, [], new byte[] { 1 })));

        Assert.Contains("Npgsql.NpgsqlTransaction", error.Message, StringComparison.Ordinal);
        Assert.Contains("Microsoft.Data.Sqlite.SqliteTransaction", error.Message, StringComparison.Ordinal);
        Assert.Equal(IdempotencyRecordState.InProgress, (await executor.Store.GetAsync(id, default))!.State);
    }

    public void Dispose()
    {
        foreach (var file in new[] { _sqliteFile, _sqliteFile + "-wal", _sqliteFile + "-shm" })
        {
            File.Delete(file);
        }
    }
}
