using Oncely.StackExchangeRedis.Tests.Infrastructure;
using Oncely.Storage.Specification;

namespace Oncely.StackExchangeRedis.Tests;

/// <summary>The erasure conformance suite on a real standalone Redis (a key prefix of its own per store; the server's clock).</summary>
[Collection(StandaloneSpecificationCollection.Name)]
public sealed class RedisErasureSpecificationTests(StandaloneRedisFixture fixture) : IdempotencyStoreErasureSpecification, IAsyncLifetime
{
    private readonly RedisStoreSet _stores = new(fixture.Connection, "erasure-spec");

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => _stores.DisposeAsync().AsTask();

    protected override ValueTask<IIdempotencyStore> CreateStoreAsync() => _stores.CreateAsync();

    protected override Task AdvanceClockAsync(TimeSpan by) => Task.Delay(by);
}

/// <summary>The same suite on a three-primary Redis Cluster: a tenant's records are spread over every primary.</summary>
[Collection(ClusterSpecificationCollection.Name)]
public sealed class RedisClusterErasureSpecificationTests(ClusterRedisFixture fixture) : IdempotencyStoreErasureSpecification, IAsyncLifetime
{
    private readonly RedisStoreSet _stores = new(fixture.Connection, "cluster-erasure-spec");

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => _stores.DisposeAsync().AsTask();

    protected override ValueTask<IIdempotencyStore> CreateStoreAsync() => _stores.CreateAsync();

    protected override Task AdvanceClockAsync(TimeSpan by) => Task.Delay(by);
}
