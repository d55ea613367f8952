using Oncely.StackExchangeRedis.Tests.Infrastructure;
using Oncely.Storage.Specification;
using StackExchange.Redis;

namespace Oncely.StackExchangeRedis.Tests;

/// <summary>
/// The shared store conformance suite, unchanged, against a real standalone Redis. Every store gets a key prefix of its
/// own. The store decides time with the server's <c>TIME</c>, so moving its clock forward means waiting.
/// </summary>
[Collection(StandaloneSpecificationCollection.Name)]
public sealed class RedisStoreSpecificationTests(StandaloneRedisFixture fixture) : IdempotencyStoreSpecification, IAsyncLifetime
{
    private readonly RedisStoreSet _stores = new(fixture.Connection, "spec");

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => _stores.DisposeAsync().AsTask();

    protected override ValueTask<IIdempotencyStore> CreateStoreAsync() => _stores.CreateAsync();

    protected override Task AdvanceClockAsync(TimeSpan by) => Task.Delay(by);
}

/// <summary>The same conformance suite, unchanged, against a three-primary Redis Cluster.</summary>
[Collection(ClusterSpecificationCollection.Name)]
public sealed class RedisClusterStoreSpecificationTests(ClusterRedisFixture fixture) : IdempotencyStoreSpecification, IAsyncLifetime
{
    private readonly RedisStoreSet _stores = new(fixture.Connection, "cluster-spec");

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => _stores.DisposeAsync().AsTask();

    protected override ValueTask<IIdempotencyStore> CreateStoreAsync() => _stores.CreateAsync();

    protected override Task AdvanceClockAsync(TimeSpan by) => Task.Delay(by);
}

/// <summary>The stores one test class created, each initialised (scripts loaded) and disposed at the end.</summary>
internal sealed class RedisStoreSet(IConnectionMultiplexer connection, string label) : IAsyncDisposable
{
    private readonly List<RedisIdempotencyStore> _stores = [];

    public async ValueTask<IIdempotencyStore> CreateAsync()
    {
        var store = StoreFactory.Create(connection, StoreFactory.NewPrefix(label));
        _stores.Add(store);
        await store.InitializeAsync(CancellationToken.None);
        return store;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await store.DisposeAsync();
        }
    }
}
