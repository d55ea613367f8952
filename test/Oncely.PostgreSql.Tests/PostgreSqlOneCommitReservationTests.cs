using System.Data.Common;
using Npgsql;
using Oncely.PostgreSql.Tests.Infrastructure;
using Oncely.Storage.Specification;

namespace Oncely.PostgreSql.Tests;

/// <summary>One-commit reservation on the real PostgreSQL server: the handler's <see cref="NpgsqlTransaction"/> reserves the record.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlOneCommitReservationTests(PostgresFixture fixture) : OneCommitReservationSpecification
{
    private NpgsqlDataSource? _dataSource;

    protected override async Task<IIdempotencyStore> CreateStoreAsync()
    {
        var database = await fixture.DatabaseForAsync(GetType());
        _dataSource = fixture.Server.CreateDataSource(database);
        var store = StoreTestBase.CreateStore(_dataSource);
        await store.InitializeAsync(CancellationToken.None);
        return store;
    }

    protected override async Task<DbConnection> OpenConnectionAsync() => await _dataSource!.OpenConnectionAsync();

    protected override async ValueTask DisposeStoreAsync(IIdempotencyStore store)
    {
        await base.DisposeStoreAsync(store);
        if (_dataSource is not null)
        {
            await _dataSource.DisposeAsync();
        }
    }

    [Fact]
    public async Task ReserveInTransaction_LockWaitRunsOut_InProgressAndTheTransactionKeepsItsOwnLockTimeout()
    {
        var executor = new IdempotencyExecutor(Store, new IdempotencyEngineOptions { ReservationLockTimeout = TimeSpan.FromMilliseconds(200) });
        var id = new IdempotencyRecordId("tenant-one-commit", "POST /one-commit", Guid.NewGuid().ToString());
        var fingerprint = new string('c', 64);
        await using var holderConnection = await OpenConnectionAsync();
        await using var holderTransaction = await holderConnection.BeginTransactionAsync();
        await (await executor.BeginOneCommitAsync(id, fingerprint)).Execution!.ReserveInTransactionAsync(holderTransaction);

        await using var connection = await OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var conflict = await Assert.ThrowsAsync<IdempotencyReservationConflictException>(
            () => executor.BeginOneCommitAsync(id, fingerprint).AsTask().ContinueWith(d => d.Result.Execution!.ReserveInTransactionAsync(transaction).AsTask()).Unwrap());

        Assert.Equal(IdempotencyDecisionKind.InProgress, conflict.Kind);
        Assert.InRange(watch.Elapsed, TimeSpan.FromMilliseconds(150), TimeSpan.FromSeconds(4));

        // A successful reservation puts the transaction's own lock_timeout back.
        await holderTransaction.RollbackAsync();
        await using var third = await OpenConnectionAsync();
        await using var thirdTransaction = await third.BeginTransactionAsync();
        await using (var set = new NpgsqlCommand("SET LOCAL lock_timeout = '7s'", (NpgsqlConnection)third, (NpgsqlTransaction)thirdTransaction))
        {
            await set.ExecuteNonQueryAsync();
        }

        await (await executor.BeginOneCommitAsync(id, fingerprint)).Execution!.ReserveInTransactionAsync(thirdTransaction);
        await using var show = new NpgsqlCommand("SHOW lock_timeout", (NpgsqlConnection)third, (NpgsqlTransaction)thirdTransaction);
        Assert.Equal("7s", (string)(await show.ExecuteScalarAsync())!);
    }
}
