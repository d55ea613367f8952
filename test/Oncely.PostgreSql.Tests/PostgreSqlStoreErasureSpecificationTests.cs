using Npgsql;
using Oncely.PostgreSql.Tests.Infrastructure;
using Oncely.Storage.Specification;

namespace Oncely.PostgreSql.Tests;

/// <summary>The erasure conformance suite on a real PostgreSQL: a table of its own per store; the server's clock, so time passes by waiting.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlStoreErasureSpecificationTests(PostgresFixture fixture) : IdempotencyStoreErasureSpecification, IAsyncLifetime
{
    private static int s_tables;

    private readonly List<PostgreSqlIdempotencyStore> _stores = [];
    private NpgsqlDataSource _dataSource = null!;

    public async Task InitializeAsync()
    {
        var database = await fixture.DatabaseForAsync(GetType());
        _dataSource = fixture.Server.CreateDataSource(database);
    }

    public async Task DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await store.DisposeAsync();
        }

        await _dataSource.DisposeAsync();
    }

    protected override async ValueTask<IIdempotencyStore> CreateStoreAsync()
    {
        var table = $"erasure_{Interlocked.Increment(ref s_tables)}";
        var store = StoreTestBase.CreateStore(_dataSource, o => o.TableName = table);
        _stores.Add(store);
        await store.InitializeAsync(CancellationToken.None);
        return store;
    }

    protected override Task AdvanceClockAsync(TimeSpan by) => Task.Delay(by);
}
