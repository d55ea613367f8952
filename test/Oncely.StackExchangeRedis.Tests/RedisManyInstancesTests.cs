using System.Net;
using Oncely.StackExchangeRedis.Tests.Infrastructure;
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
{
    [Fact]
    public Task ChargeStorm_ThreeInstances30KeysTimes10_OneChargePerKeyAndEveryAnswerFaithful()
        => ChargeStorm.RunAsync(fixture.Server.EndPoint, fixture.Connection, output);
}

/// <summary>The same storm on a three-primary Redis Cluster, whose keys land on all three primaries.</summary>
[Collection(ClusterCollection.Name)]
public sealed class RedisClusterManyInstancesTests(ClusterRedisFixture fixture, ITestOutputHelper output)
{
    [Fact]
    public Task ChargeStorm_ThreeInstances30KeysTimes10OnACluster_OneChargePerKeyAndKeysOnEveryPrimary()
        => ChargeStorm.RunAsync(fixture.Cluster.Configuration, fixture.Connection, output, expectedPrimaries: 3);
}

internal static class ChargeStorm
{
    private const int Instances = 3;
    private const int Keys = 30;
    private const int RequestsPerKey = 10;
    private static readonly TimeSpan HandlerDelay = TimeSpan.FromMilliseconds(30);

    public static async Task RunAsync(string configuration, IConnectionMultiplexer inspector, ITestOutputHelper output, int expectedPrimaries = 1)
    {
        var prefix = StoreFactory.NewPrefix("storm");
        var ledger = new Ledger();
        var apps = new List<ChargesApp>();
        try
        {
            for (var i = 0; i < Instances; i++)
            {
                apps.Add(await ChargesApp.StartAsync($"instance-{i}", configuration, prefix, ledger, HandlerDelay));
            }

            // Warm up: HTTP connections and each instance's Redis connection (the warm-up keys are charges like any other).
            await Task.WhenAll(apps.SelectMany(app => Enumerable.Range(0, 10).Select(i => app.SendAsync($"warm-{app.Name}-{i}-{Guid.NewGuid():N}", 1))));
            var runsBefore = apps.Sum(a => a.HandlerRuns);
            var keys = Enumerable.Range(0, Keys).Select(k => $"storm-{k}-{Guid.NewGuid():N}").ToArray();
            var requests = Enumerable.Range(0, Keys * RequestsPerKey)
                .Select(n => (App: apps[n % Instances], Key: keys[n / RequestsPerKey], Amount: 100L + (n / RequestsPerKey)))
                .OrderBy(_ => Random.Shared.Next())
                .ToArray();
            var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var sends = requests.Select(async r =>
            {
                await start.Task;
                return await r.App.SendAsync(r.Key, r.Amount);
            }).ToArray();
            start.SetResult();
            var answers = await Task.WhenAll(sends);

            Assert.All(keys, key => Assert.Equal(1, ledger.Charges.GetValueOrDefault(key)));
            Assert.Equal(Keys, apps.Sum(a => a.HandlerRuns) - runsBefore);
            var executions = new Dictionary<string, ChargesApp.Answer>(StringComparer.Ordinal);
            foreach (var group in answers.GroupBy(a => a.Key))
            {
                Assert.Equal(RequestsPerKey, group.Count());
                var execution = Assert.Single(group, a => a.IsExecution);
                executions[group.Key] = execution;
                foreach (var answer in group.Where(a => !a.IsExecution))
                {
                    ChargesApp.AssertReplayOrInProgress(execution, answer);
                }
            }

            // After the storm every instance replays every key, byte for byte, whichever instance executed it.
            var after = await Task.WhenAll(from app in apps from key in keys select app.SendAsync(key, executions[key].Charge.Amount));
            Assert.All(after, answer => ChargesApp.AssertReplay(executions[answer.Key], answer));
            Assert.Equal(Keys, apps.Sum(a => a.HandlerRuns) - runsBefore);
            Assert.All(ledger.Charges.Values, count => Assert.Equal(1, count));

            // Where the records live: the primaries' own key spaces, scanned.
            var perPrimary = new Dictionary<string, int>();
            foreach (var server in inspector.GetServers().Where(s => !s.IsReplica))
            {
                var count = 0;
                await foreach (var key in server.KeysAsync(pattern: prefix + ":{*}:r:*"))
                {
                    if (keys.Any(k => key.ToString().EndsWith(":" + k, StringComparison.Ordinal)))
                    {
                        count++;
                    }
                }

                perPrimary[server.EndPoint!.ToString()!] = count;
            }

            Assert.Equal(Keys, perPrimary.Values.Sum());
            Assert.Equal(expectedPrimaries, perPrimary.Count(p => p.Value > 0));
            output.WriteLine($"storm: {answers.Length} requests: {answers.Count(a => a.IsExecution)} executions, {answers.Count(a => a.Status == HttpStatusCode.Conflict)} in progress (409), "
                + $"{answers.Count(a => a.Replayed)} replays; records per primary: {string.Join(", ", perPrimary.Select(p => $"{p.Key} {p.Value}"))}");
        }
        finally
        {
            foreach (var app in apps)
            {
                await app.DisposeAsync();
            }
        }
    }
}
