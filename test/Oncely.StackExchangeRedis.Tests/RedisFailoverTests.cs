using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Oncely.StackExchangeRedis.Tests.Infrastructure;
using Oncely.Storage.Specification;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace Oncely.StackExchangeRedis.Tests;

[CollectionDefinition(Name)]
public sealed class FailoverCollection
{
    public const string Name = "Redis failover";
}

/// <summary>
/// Issue 24: a primary of a six-node cluster (three primaries, one replica each, <c>cluster-node-timeout 1000</c>) is
/// killed (<c>SIGKILL</c>) under load while its replica lags: the replica is frozen (<c>SIGSTOP</c>) and its link is cut
/// (<c>CLIENT KILL TYPE replica</c> on the primary), so every write the primary takes from then on exists on the primary
/// only. Then the primary dies and the replica, resumed, is promoted without those writes. Each test starts a cluster of
/// its own (the run destroys its topology) and stops it at the end.
/// </summary>
[Collection(FailoverCollection.Name)]
public sealed class RedisFailoverTests(ITestOutputHelper output)
{
    [Fact]
    public async Task PrimaryKilledWithALaggingReplica_DefaultOptions_NoKeyRunsTwiceAndNoAnswerChanges()
    {
        var run = await FailoverRun.RunAsync(output, configureStore: null);

        // While the replica lagged, the default waited for it: nothing ran on a reservation the failover could lose.
        Assert.All(run.LagAnswers, a => Assert.Equal(HttpStatusCode.ServiceUnavailable, a.Status));
        Assert.All(run.LagKeys, k => Assert.False(run.RanBeforeFailover(k), $"{k} ran while its reservation was unacknowledged"));

        // Once promoted, every key ran at most once, and every answer a client got for a key is the same charge.
        run.AssertEveryKeyRanAtMostOnceAndNoAnswerChanged();

        // And the keys refused during the lag ran afterwards, once.
        Assert.All(run.LagKeys, k => Assert.Equal(1, run.Ledger.Charges.GetValueOrDefault(k)));
    }

    [Fact]
    public async Task PrimaryKilledWithALaggingReplica_AcknowledgementsOptedOut_RecordsWrittenDuringTheLagAreLostAndRunAgain()
    {
        // The documented cost of ReplicaAcknowledgements = 0: writes do not wait, so the records the primary alone held
        // are lost with it, and a retry of such a key runs the operation again and answers with a different charge.
        var run = await FailoverRun.RunAsync(output, configureStore: o => o.ReplicaAcknowledgements = 0);

        Assert.All(run.LagAnswers, a => Assert.True(a.IsExecution, a.ToString()));
        foreach (var key in run.LagKeys)
        {
            Assert.Equal(2, run.Ledger.Charges[key]);
            var executions = run.AnswersFor(key).Where(a => a.IsExecution).Select(a => a.Charge.Id).Distinct().ToList();
            Assert.Equal(2, executions.Count);
        }
    }
}

/// <summary>One failover under load, and everything it answered.</summary>
internal sealed class FailoverRun
{
    private const int LagKeyCount = 3;
    private const int Workers = 3;
    private static readonly TimeSpan HandlerDelay = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan NodeTimeout = TimeSpan.FromSeconds(1);

    private readonly ConcurrentQueue<(string Phase, ChargesApp.Answer Answer)> _answers = new();
    private readonly ConcurrentDictionary<string, bool> _keys = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _chargesBeforeFailover = new(StringComparer.Ordinal);

    public InProcessChargeLedger Ledger { get; } = new();

    public List<string> LagKeys { get; } = [];

    public List<ChargesApp.Answer> LagAnswers => _answers.Where(a => a.Phase == "lag").Select(a => a.Answer).ToList();

    public IEnumerable<ChargesApp.Answer> AnswersFor(string key) => _answers.Select(a => a.Answer).Where(a => a.Key == key);

    public bool RanBeforeFailover(string key) => _chargesBeforeFailover.ContainsKey(key);

    public static async Task<FailoverRun> RunAsync(ITestOutputHelper output, Action<RedisIdempotencyStoreOptions>? configureStore)
    {
        var run = new FailoverRun();
        await using var cluster = await RedisCluster.StartNewAsync(replicasPerPrimary: 1, nodeTimeout: NodeTimeout);
        await using var inspector = await SharedRedis.ConnectAsync(cluster.Configuration);
        var prefix = StoreFactory.NewPrefix("failover");
        var layout = new RedisKeyLayout(prefix);
        await using var a = await RedisChargesApp.StartAsync("a", cluster.Configuration, prefix, run.Ledger, HandlerDelay, configureStore);
        await using var b = await RedisChargesApp.StartAsync("b", cluster.Configuration, prefix, run.Ledger, HandlerDelay, configureStore);
        ChargesApp[] apps = [a, b];

        var victim = await PrimaryAsync(cluster);
        var replica = await cluster.ReplicaOfAsync(victim);

        // The victim's slots, read once: after the failover they belong to the promoted replica.
        var victimSlots = inspector.GetServer(victim.EndPoint).ClusterConfiguration!.Nodes
            .Single(n => ((IPEndPoint)n.EndPoint!).Port == victim.Port && !n.IsReplica).Slots;
        string NewKey(bool onVictim)
        {
            for (var attempt = 0; attempt < 10_000; attempt++)
            {
                var key = $"k-{Guid.NewGuid():N}";
                var slot = inspector.HashSlot(layout.Record(new IdempotencyRecordId(IdempotencyRecordId.AnonymousTenant, "POST /charges", key)));
                if (victimSlots.Any(r => slot >= r.From && slot <= r.To) == onVictim)
                {
                    return key;
                }
            }

            throw new InvalidOperationException("No key found for the wanted primary.");
        }

        // Healthy: keys on every primary, every one executed once.
        var healthy = await Task.WhenAll(Enumerable.Range(0, 12).Select(i => run.SendAsync("healthy", apps[i % 2], NewKey(onVictim: i % 3 == 0))));
        Assert.All(healthy, h => Assert.True(h.IsExecution, h.ToString()));

        // Load from here to the end: new keys (a third on the victim) and retries of earlier keys, through both instances.
        using var stopLoad = new CancellationTokenSource();
        var load = Task.WhenAll(Enumerable.Range(0, Workers).Select(w => Task.Run(async () =>
        {
            for (var i = 0; i < 1_000 && !stopLoad.IsCancellationRequested; i++)
            {
                var key = i % 2 == 0 ? NewKey(onVictim: i % 3 == 0) : run._keys.Keys.ElementAt(Random.Shared.Next(run._keys.Count));
                await run.SendAsync("load", apps[(w + i) % 2], key);
                await Task.Delay(20);
            }
        })));

        await Task.Delay(500);

        // The replica lags: frozen, and its link cut by the primary, so it cannot catch up.
        await replica.PauseAsync();
        Assert.Equal(":1", await victim.CommandAsync("CLIENT KILL TYPE replica"));
        foreach (var _ in Enumerable.Range(0, LagKeyCount))
        {
            var key = NewKey(onVictim: true);
            run.LagKeys.Add(key);
            await run.SendAsync("lag", a, key);
        }

        foreach (var (key, count) in run.Ledger.Charges)
        {
            run._chargesBeforeFailover[key] = count;
        }

        // The primary dies; the replica comes back and is promoted without what the primary took alone.
        var killed = Stopwatch.StartNew();
        await victim.KillAsync();
        await replica.ResumeAsync();
        while (!(await replica.RawAsync("INFO replication")).Contains("role:master", StringComparison.Ordinal))
        {
            Assert.True(killed.Elapsed < TimeSpan.FromSeconds(30), "The replica was not promoted within 30 s: " + replica.Log());
            await Task.Delay(20);
        }

        var promotion = killed.Elapsed;
        var promoted = DateTimeOffset.UtcNow;

        // The killed node is restarted, as a supervisor does: it rejoins as the new primary's replica (with one replica
        // per primary, the promoted primary has none until then, and with the default its slots refuse writes).
        await victim.StartAsync();
        while (!(await victim.RawAsync("INFO replication")).Contains("master_link_status:up", StringComparison.Ordinal))
        {
            Assert.True(killed.Elapsed < TimeSpan.FromSeconds(60), "The restarted node did not rejoin as a replica within 60 s: " + victim.Log());
            await Task.Delay(20);
        }

        var rejoined = killed.Elapsed;
        await Task.Delay(1000);
        await stopLoad.CancelAsync();
        await load;

        // Every key once more through each instance, until it answers 201 (a first execution or a replay) or stays
        // in progress (a reservation whose completion no replica acknowledged is kept for its lease, 30 s: row 17).
        // Bounded: 30 s in all (under the lease, so nothing here can take over an InProgress record).
        var after = Stopwatch.StartNew();
        await Parallel.ForEachAsync(run._keys.Keys.Concat(run.LagKeys).Distinct().ToList(), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (key, _) =>
        {
            foreach (var app in apps)
            {
                while (after.Elapsed < TimeSpan.FromSeconds(20))
                {
                    var answer = await run.SendAsync("after", app, key);
                    if (answer.Status != HttpStatusCode.ServiceUnavailable)
                    {
                        break;
                    }

                    await Task.Delay(250);
                }
            }
        });

        run.Report(output, promotion, rejoined, promoted, victimSlotsOf: key => victimSlots.Any(r => inspector.HashSlot(layout.Record(new IdempotencyRecordId(IdempotencyRecordId.AnonymousTenant, "POST /charges", key))) is var slot && slot >= r.From && slot <= r.To));
        return run;
    }

    public void AssertEveryKeyRanAtMostOnceAndNoAnswerChanged()
    {
        Assert.All(Ledger.Charges, c => Assert.True(c.Value == 1, $"{c.Key} ran {c.Value} times"));
        foreach (var group in _answers.Select(a => a.Answer).GroupBy(a => a.Key))
        {
            var created = group.Where(a => a.Status == HttpStatusCode.Created).ToList();
            Assert.True(created.Count(a => a.IsExecution) <= 1, $"{group.Key} executed twice: {string.Join(" | ", created)}");
            Assert.True(created.Select(a => a.Charge.Id).Distinct().Count() <= 1, $"{group.Key} answered two charges: {string.Join(" | ", created)}");
            foreach (var answer in group)
            {
                Assert.True(answer.Status is HttpStatusCode.Created or HttpStatusCode.ServiceUnavailable or HttpStatusCode.Conflict, answer.ToString());
                if (answer.Status == HttpStatusCode.Conflict)
                {
                    Assert.Equal("idempotency-request-in-progress", answer.ProblemType);
                }
            }
        }
    }

    private async Task<ChargesApp.Answer> SendAsync(string phase, ChargesApp app, string key)
    {
        _keys.TryAdd(key, true);
        var answer = await app.SendAsync(key, 100);
        _answers.Enqueue((phase, answer));
        return answer;
    }

    private static async Task<RedisServer> PrimaryAsync(RedisCluster cluster)
    {
        foreach (var node in cluster.Nodes)
        {
            if ((await node.RawAsync("INFO replication")).Contains("role:master", StringComparison.Ordinal))
            {
                return node;
            }
        }

        throw new InvalidOperationException("The cluster has no primary.");
    }

    // What the run measured, for docs/redis.md: promotion, and when each side of the cluster answered again after the kill.
    private void Report(ITestOutputHelper output, TimeSpan promotion, TimeSpan rejoined, DateTimeOffset promoted, Func<string, bool> victimSlotsOf)
    {
        var killedAt = promoted - promotion;
        var answers = _answers.Select(x => x.Answer).Where(x => x.Finished >= killedAt).ToList();
        output.WriteLine($"promotion {promotion.TotalSeconds:F2} s after SIGKILL, old primary back as a replica at {rejoined.TotalSeconds:F2} s; {Ledger.Charges.Count} keys, {Ledger.Charges.Values.Sum()} executions, {Ledger.Charges.Count(c => c.Value > 1)} keys ran twice");
        output.WriteLine($"answers: {string.Join(", ", _answers.GroupBy(x => (x.Phase, (int)x.Answer.Status)).OrderBy(g => g.Key).Select(g => $"{g.Key.Phase} {g.Key.Item2}: {g.Count()}"))}");
        foreach (var (side, onVictim) in new[] { ("victim's slots", true), ("other slots", false) })
        {
            var mine = answers.Where(x => victimSlotsOf(x.Key) == onVictim).ToList();
            var refused = mine.Where(x => x.Status == HttpStatusCode.ServiceUnavailable).ToList();
            var firstWrite = mine.Where(x => x.IsExecution).Select(x => (x.Finished - killedAt).TotalSeconds).DefaultIfEmpty(double.NaN).Min();
            output.WriteLine(refused.Count == 0
                ? $"{side}: no 503 after the kill; first execution {firstWrite:F2} s after it"
                : $"{side}: {refused.Count} x 503 finishing {(refused.Min(x => x.Finished) - killedAt).TotalSeconds:F2}-{(refused.Max(x => x.Finished) - killedAt).TotalSeconds:F2} s after the kill (each waited {refused.Min(x => (x.Finished - x.Started).TotalSeconds):F2}-{refused.Max(x => (x.Finished - x.Started).TotalSeconds):F2} s); first execution {firstWrite:F2} s after it");
        }
    }
}
