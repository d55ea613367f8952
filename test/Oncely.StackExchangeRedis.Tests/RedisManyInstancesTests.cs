using Oncely.StackExchangeRedis.Tests.Infrastructure;
using Oncely.Storage.Specification;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace Oncely.StackExchangeRedis.Tests;

/// <summary>
/// Three app instances, each with its own Redis connection, behind one Redis, as a load-balanced deployment runs.
/// Hundreds of concurrent requests over a few dozen keys, each key's requests spread over all three instances: exactly
/// one charge per key, and every other answer is a faithful replay or a 409.
/// </summary>
[Collection(StandaloneCollection.Name)]
public sealed class RedisManyInstancesTests(StandaloneRedisFixture fixture, ITestOutputHelper output)
    : RedisManyInstancesSpecification(fixture.Server.EndPoint, fixture.Connection, expectedPrimaries: 1, output)
{
    [Fact]
    public Task ChargeStorm_ThreeInstances30KeysTimes10_OneChargePerKeyAndEveryAnswerFaithful() => ChargeStormAsync();
}

/// <summary>The same storm on a three-primary Redis Cluster, whose keys land on all three primaries.</summary>
[Collection(ClusterCollection.Name)]
public sealed class RedisClusterManyInstancesTests(ClusterRedisFixture fixture, ITestOutputHelper output)
    : RedisManyInstancesSpecification(fixture.Cluster.Configuration, fixture.Connection, expectedPrimaries: 3, output)
{
    [Fact]
    public Task ChargeStorm_ThreeInstances30KeysTimes10OnACluster_OneChargePerKeyAndKeysOnEveryPrimary() => ChargeStormAsync();
}

/// <summary>
/// The storm on Redis: charges in an in-process ledger, and afterwards the primaries' own key spaces scanned to see
/// that every record is there and on how many primaries they landed.
/// </summary>
public abstract class RedisManyInstancesSpecification(string configuration, IConnectionMultiplexer inspector, int expectedPrimaries, ITestOutputHelper output)
    : ManyInstancesSpecification(output)
{
    private readonly string _prefix = StoreFactory.NewPrefix("storm");
    private readonly InProcessChargeLedger _ledger = new();

    protected override IChargeLedger Ledger => _ledger;

    protected override Task<ChargesApp> StartInstanceAsync(string name, TimeSpan handlerDelay)
        => RedisChargesApp.StartAsync(name, configuration, _prefix, _ledger, handlerDelay);

    protected override async Task<string> InspectRecordsAsync(IReadOnlyList<string> keys)
    {
        var perPrimary = new Dictionary<string, int>();
        foreach (var server in inspector.GetServers().Where(s => !s.IsReplica))
        {
            var count = 0;
            await foreach (var key in server.KeysAsync(pattern: _prefix + ":{*}:r:*"))
            {
                if (keys.Any(k => key.ToString().EndsWith(":" + k, StringComparison.Ordinal)))
                {
                    count++;
                }
            }

            perPrimary[server.EndPoint!.ToString()!] = count;
        }

        Assert.Equal(keys.Count, perPrimary.Values.Sum());
        Assert.Equal(expectedPrimaries, perPrimary.Count(p => p.Value > 0));
        return $"records per primary: {string.Join(", ", perPrimary.Select(p => $"{p.Key} {p.Value}"))}";
    }
}
