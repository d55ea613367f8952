using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Oncely.StackExchangeRedis.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Payments.Tests;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RedisRecordsCollection
{
    public const string Name = "Payments on Redis";
}

/// <summary>
/// Issue 17, item 15: the sample with its idempotency records in Redis (<c>Payments:IdempotencyStore=Redis</c>) while the
/// ledger stays in SQLite, on a real standalone redis-server, a three-primary cluster, and a six-node cluster whose
/// primary is killed under load.
/// </summary>
[Collection(RedisRecordsCollection.Name)]
public sealed class RedisRecordsTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Payment_RecordsInStandaloneRedis_ChargesOnceReplaysTheSameBodyAndKeepsTheRecordInRedis()
    {
        await using var redis = await RedisServer.StartNewAsync();
        await using var host = await PaymentsHost.StartAsync(redis: redis.EndPoint, oneCommit: null);
        await AssertPaysOnceAsync(host);
        Assert.NotEqual(":0", await redis.CommandAsync("DBSIZE"));
    }

    [Fact]
    public async Task Payment_RecordsInARedisCluster_ChargesOnceAndReplaysTheSameBody()
    {
        await using var cluster = await RedisCluster.StartNewAsync();
        await using var host = await PaymentsHost.StartAsync(redis: cluster.Configuration, oneCommit: null);
        await AssertPaysOnceAsync(host);
    }

    [Fact]
    public void Settings_RedisWithoutAConnectionOrWithOneCommit_RefusedAtStartSayingWhatToChange()
    {
        var missing = Assert.Throws<InvalidOperationException>(() => Settings(("Payments:IdempotencyStore", "Redis")));
        Assert.Contains("Payments:RedisConnection is empty", missing.Message, StringComparison.Ordinal);

        var oneCommit = Assert.Throws<InvalidOperationException>(() => Settings(("Payments:IdempotencyStore", "Redis"), ("Payments:RedisConnection", "localhost:6379"), ("Payments:OneCommit", "true")));
        Assert.Contains("Payments:OneCommit is true", oneCommit.Message, StringComparison.Ordinal);

        var redis = Settings(("Payments:IdempotencyStore", "Redis"), ("Payments:RedisConnection", "localhost:6379"));
        Assert.False(redis.OneCommit);
        Assert.False(redis.CompletesInLedgerTransaction);
        Assert.True(Settings().CompletesInLedgerTransaction);
        Assert.True(Settings().OneCommit);
    }

    /// <summary>
    /// A primary of a six-node cluster (one replica each, <c>cluster-node-timeout 1000</c>) is killed under load with its
    /// replica lagging (frozen, its link cut), then restarted as a supervisor would. With the store's defaults no payment
    /// key moves money twice and no key gets two different answers; the ledger stays balanced.
    /// </summary>
    [Fact]
    public async Task Payments_PrimaryKilledWithALaggingReplica_NoPaymentMovesMoneyTwice()
    {
        await using var cluster = await RedisCluster.StartNewAsync(replicasPerPrimary: 1, nodeTimeout: TimeSpan.FromSeconds(1));
        await using var host = await PaymentsHost.StartAsync(redis: cluster.Configuration, oneCommit: null);
        using var client = host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1_000_000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        var answers = new ConcurrentQueue<(string Key, HttpStatusCode Status, bool Replayed, string? PaymentId, DateTimeOffset At)>();
        var keys = new ConcurrentDictionary<string, bool>(StringComparer.Ordinal);

        async Task<HttpStatusCode> PayAsync(string key)
        {
            keys.TryAdd(key, true);
            using var response = await PaymentsHost.PostAsync(client, "/payments", new { from = alice.Id, to = bob.Id, amount = 1, currency = "EUR", reference = key }, key);
            var body = await response.Content.ReadAsStringAsync();
            string? id = null;
            if (response.StatusCode == HttpStatusCode.Created)
            {
                using var json = JsonDocument.Parse(body);
                id = json.RootElement.GetProperty("id").GetString();
            }

            answers.Enqueue((key, response.StatusCode, response.Headers.Contains("Idempotent-Replayed"), id, DateTimeOffset.UtcNow));
            return response.StatusCode;
        }

        var primaries = new List<RedisServer>();
        foreach (var node in cluster.Nodes)
        {
            if ((await node.RawAsync("INFO replication")).Contains("role:master", StringComparison.Ordinal))
            {
                primaries.Add(node);
            }
        }

        var victim = primaries[0];
        var replica = await cluster.ReplicaOfAsync(victim);
        Assert.All(await Task.WhenAll(Enumerable.Range(0, 9).Select(_ => PayAsync(Guid.NewGuid().ToString()))), s => Assert.Equal(HttpStatusCode.Created, s));

        using var stop = new CancellationTokenSource();
        var load = Task.WhenAll(Enumerable.Range(0, 3).Select(w => Task.Run(async () =>
        {
            for (var i = 0; i < 1_000 && !stop.IsCancellationRequested; i++)
            {
                await PayAsync(i % 2 == 0 ? Guid.NewGuid().ToString() : keys.Keys.ElementAt(Random.Shared.Next(keys.Count)));
                await Task.Delay(20);
            }
        })));
        await Task.Delay(500);

        await replica.PauseAsync();
        Assert.Equal(":1", await victim.CommandAsync("CLIENT KILL TYPE replica"));
        await Task.Delay(1000);
        var killed = Stopwatch.StartNew();
        var killedAt = DateTimeOffset.UtcNow;
        await victim.KillAsync();
        await replica.ResumeAsync();
        while (!(await replica.RawAsync("INFO replication")).Contains("role:master", StringComparison.Ordinal))
        {
            Assert.True(killed.Elapsed < TimeSpan.FromSeconds(30), "The replica was not promoted within 30 s.");
            await Task.Delay(20);
        }

        var promotion = killed.Elapsed;
        await victim.StartAsync();
        while (!(await victim.RawAsync("INFO replication")).Contains("master_link_status:up", StringComparison.Ordinal))
        {
            Assert.True(killed.Elapsed < TimeSpan.FromSeconds(60), "The restarted node did not rejoin within 60 s.");
            await Task.Delay(20);
        }

        var rejoined = killed.Elapsed;
        await Task.Delay(1000);
        await stop.CancelAsync();
        await load;

        // Every key again, until it answers 201 or stays in progress (a completion no replica acknowledged: row 17).
        var after = Stopwatch.StartNew();
        await Parallel.ForEachAsync(keys.Keys.ToList(), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (key, _) =>
        {
            while (await PayAsync(key) == HttpStatusCode.ServiceUnavailable && after.Elapsed < TimeSpan.FromSeconds(20))
            {
                await Task.Delay(250);
            }
        });

        var byKey = answers.GroupBy(a => a.Key).ToList();
        foreach (var key in byKey)
        {
            Assert.All(key, a => Assert.Contains(a.Status, new[] { HttpStatusCode.Created, HttpStatusCode.Conflict, HttpStatusCode.ServiceUnavailable }));
            Assert.True(key.Count(a => a.Status == HttpStatusCode.Created && !a.Replayed) <= 1, $"{key.Key} executed twice");
            Assert.True(key.Where(a => a.PaymentId is not null).Select(a => a.PaymentId).Distinct().Count() <= 1, $"{key.Key} answered two payments");
        }

        var paid = byKey.Count(k => k.Any(a => a.Status == HttpStatusCode.Created));
        var unsettled = byKey.Count(k => k.All(a => a.Status != HttpStatusCode.Created));
        var moved = await host.Ledger.CountPaymentsAsync();
        Assert.InRange(moved, paid, paid + unsettled);
        Assert.Equal(1_000_000 - moved, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
        var check = await host.Ledger.CheckAsync();
        Assert.True(check.IsBalanced, check.ToString());

        var refused = answers.Where(a => a.Status == HttpStatusCode.ServiceUnavailable && a.At >= killedAt).ToList();
        output.WriteLine($"promotion {promotion.TotalSeconds:F2} s after SIGKILL, old primary back as a replica at {rejoined.TotalSeconds:F2} s; " +
            $"{keys.Count} keys, {moved} payments moved, {paid} keys answered 201, {unsettled} never; {answers.Count} answers: " +
            string.Join(", ", answers.GroupBy(a => (int)a.Status).OrderBy(g => g.Key).Select(g => $"{g.Key} x{g.Count()}")) +
            (refused.Count > 0 ? $"; 503s until {(refused.Max(a => a.At) - killedAt).TotalSeconds:F2} s after the kill" : string.Empty));
    }

    private static async Task AssertPaysOnceAsync(PaymentsHost host)
    {
        using var client = host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 10_000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        var body = new { from = alice.Id, to = bob.Id, amount = 300, currency = "EUR" };
        var key = Guid.NewGuid().ToString();

        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => PaymentsHost.PostAsync(client, "/payments", body, key)));
        Assert.All(responses, r => Assert.Contains(r.StatusCode, new[] { HttpStatusCode.Created, HttpStatusCode.Conflict }));
        var executed = Assert.Single(responses, r => r.StatusCode == HttpStatusCode.Created && !r.Headers.Contains("Idempotent-Replayed"));
        using var retry = await PaymentsHost.PostAsync(client, "/payments", body, key);

        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.Equal("true", Assert.Single(retry.Headers.GetValues("Idempotent-Replayed")));
        Assert.Equal(await executed.Content.ReadAsByteArrayAsync(), await retry.Content.ReadAsByteArrayAsync());
        Assert.Equal(1, await host.Ledger.CountPaymentsAsync());
        Assert.Equal(9_700, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
        var check = await host.Ledger.CheckAsync();
        Assert.True(check.IsBalanced, check.ToString());
        foreach (var response in responses)
        {
            response.Dispose();
        }
    }

    private static PaymentsSettings Settings(params (string Key, string Value)[] values)
        => PaymentsSettings.From(new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build(), Path.GetTempPath());
}
