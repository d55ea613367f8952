using Oncely.StackExchangeRedis.Tests.Infrastructure;
using Oncely.Storage.Specification;

namespace Oncely.StackExchangeRedis.Tests;

/// <summary>
/// The shared conformance suite of the operator API's store capability, unchanged, against a real standalone Redis. The
/// store decides time with the server's <c>TIME</c>, so moving its clock forward means waiting.
/// </summary>
[Collection(StandaloneSpecificationCollection.Name)]
public sealed class RedisAdministrationSpecificationTests(StandaloneRedisFixture fixture) : IdempotencyStoreAdministrationSpecification, IAsyncLifetime
{
    private readonly RedisStoreSet _stores = new(fixture.Connection, "admin-spec");

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => _stores.DisposeAsync().AsTask();

    protected override ValueTask<IIdempotencyStore> CreateStoreAsync() => _stores.CreateAsync();

    protected override Task AdvanceClockAsync(TimeSpan by) => Task.Delay(by);
}

/// <summary>The same suite against a three-primary Redis Cluster: listings cover every primary.</summary>
[Collection(ClusterSpecificationCollection.Name)]
public sealed class RedisClusterAdministrationSpecificationTests(ClusterRedisFixture fixture) : IdempotencyStoreAdministrationSpecification, IAsyncLifetime
{
    private readonly RedisStoreSet _stores = new(fixture.Connection, "cluster-admin-spec");

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => _stores.DisposeAsync().AsTask();

    protected override ValueTask<IIdempotencyStore> CreateStoreAsync() => _stores.CreateAsync();

    protected override Task AdvanceClockAsync(TimeSpan by) => Task.Delay(by);
}

/// <summary>The operator API over HTTP on a standalone Redis (a key prefix of its own per store).</summary>
[Collection(StandaloneSpecificationCollection.Name)]
public sealed class RedisOperatorApiTests(StandaloneRedisFixture fixture) : OperatorApiSpecification, IAsyncLifetime
{
    private readonly RedisStoreSet _stores = new(fixture.Connection, "operator-api");

    protected override TimeProvider Clock => TimeProvider.System;

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => _stores.DisposeAsync().AsTask();

    protected override ValueTask<IIdempotencyStore> CreateStoreAsync() => _stores.CreateAsync();

    protected override Task AdvanceClockAsync(TimeSpan by) => Task.Delay(by);
}
