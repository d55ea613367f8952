using System.Data.Common;
using Npgsql;
using Oncely.PostgreSql.Tests.Infrastructure;
using Oncely.Storage.Specification;

namespace Oncely.PostgreSql.Tests;

/// <summary>Transactional completion on the real PostgreSQL server: the handler's <see cref="NpgsqlTransaction"/> writes the record.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlTransactionalCompletionTests(PostgresFixture fixture) : TransactionalCompletionSpecification<NpgsqlTransaction>
{
    private NpgsqlDataSource? _dataSource;
    private NpgsqlDataSource? _otherDataSource;

    protected override async Task<IIdempotencyStore> CreateStoreAsync()
    {
        var database = await fixture.DatabaseForAsync(GetType());
        _dataSource = fixture.Server.CreateDataSource(database);
        var store = StoreTestBase.CreateStore(_dataSource);
        await store.InitializeAsync(CancellationToken.None);
        return store;
    }

    protected override async Task<DbConnection> OpenConnectionAsync() => await _dataSource!.OpenConnectionAsync();

    protected override async Task<DbConnection> OpenDatabaseWithoutRecordsAsync()
    {
        _otherDataSource ??= fixture.Server.CreateDataSource(await fixture.Server.CreateDatabaseAsync("no_records"));
        return await _otherDataSource.OpenConnectionAsync();
    }

    protected override async ValueTask DisposeStoreAsync(IIdempotencyStore store)
    {
        await base.DisposeStoreAsync(store);
        if (_dataSource is not null)
        {
            await _dataSource.DisposeAsync();
        }

        if (_otherDataSource is not null)
        {
            await _otherDataSource.DisposeAsync();
        }
    }

    [Fact]
    public async Task CompleteInTransaction_OtherDatabaseWithRecordsTable_FailsWithClearError()
    {
        // Another database that happens to have an Oncely schema too: the record is not there, and that is a
        // configuration mistake, not a lost lease.
        await using var other = fixture.Server.CreateDataSource(await fixture.Server.CreateDatabaseAsync("other_records"));
        await using (var otherStore = StoreTestBase.CreateStore(other))
        {
            await otherStore.InitializeAsync(CancellationToken.None);
        }

        var executor = new IdempotencyExecutor(Store, new IdempotencyEngineOptions());
        var execution = (await executor.BeginAsync(NewId(), new string('a', 64))).Execution!;
        await using var connection = await other.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();

        var error = await Assert.ThrowsAsync<InvalidOperationException>(
            () => execution.CompleteInTransactionAsync(transaction, new IdempotentResponse(200, [], ReadOnlyMemory<byte>.Empty)).AsTask());

        Assert.Contains("same database", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CompleteInTransaction_UsesServerClockForExpiry()
    {
        var executor = new IdempotencyExecutor(Store, new IdempotencyEngineOptions { Expiration = TimeSpan.FromHours(2) });
        var id = NewId();
        var execution = (await executor.BeginAsync(id, new string('b', 64))).Execution!;
        await using (var connection = await _dataSource!.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await execution.CompleteInTransactionAsync(transaction, new IdempotentResponse(200, [], ReadOnlyMemory<byte>.Empty));
            await transaction.CommitAsync();
        }

        await using var command = _dataSource.CreateCommand(
            "SELECT extract(epoch FROM expires_at - clock_timestamp()) FROM oncely.idempotency_records WHERE idem_key = @k");
        command.Parameters.AddWithValue("k", id.Key);
        var seconds = Convert.ToDouble(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(seconds, TimeSpan.FromHours(2).TotalSeconds - 30, TimeSpan.FromHours(2).TotalSeconds);
    }
}
