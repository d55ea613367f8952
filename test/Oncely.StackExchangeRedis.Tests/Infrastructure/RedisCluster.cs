using System.Diagnostics;

namespace Oncely.StackExchangeRedis.Tests.Infrastructure;

/// <summary>
/// A throw-away Redis Cluster of three primaries, without replicas (the shared cluster) or with one replica each (the
/// failover tests): <see cref="RedisServer"/>s with <c>cluster-enabled yes</c> and a cluster configuration file of their
/// own, joined with <c>redis-cli --cluster create … --cluster-replicas N --cluster-yes</c>; ready once every node reports
/// <c>cluster_state:ok</c> and knows every other node, and every replica's link to its primary is up.
/// </summary>
public sealed class RedisCluster : IAsyncDisposable
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(30);

    private RedisCluster(IReadOnlyList<RedisServer> nodes) => Nodes = nodes;

    public IReadOnlyList<RedisServer> Nodes { get; }

    /// <summary>A StackExchange.Redis configuration string naming every node.</summary>
    public string Configuration => string.Join(',', Nodes.Select(n => n.EndPoint));

    /// <summary>
    /// Starts three primaries with <paramref name="replicasPerPrimary"/> replicas each, all on free loopback ports in
    /// directories of their own. <paramref name="nodeTimeout"/> is <c>cluster-node-timeout</c>: how long a node may be
    /// unreachable before it counts as failed (default 5 seconds; the failover tests use 1 second).
    /// </summary>
    public static async Task<RedisCluster> StartNewAsync(int replicasPerPrimary = 0, TimeSpan? nodeTimeout = null)
    {
        var nodes = new List<RedisServer>();
        var timeout = ((long)(nodeTimeout ?? TimeSpan.FromSeconds(5)).TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
        try
        {
            foreach (var _ in Enumerable.Range(0, 3 * (1 + replicasPerPrimary)))
            {
                nodes.Add(await RedisServer.StartNewAsync(persistent: false,
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", timeout));
            }

            await RunCliAsync(["--cluster", "create", .. nodes.Select(n => n.EndPoint), "--cluster-replicas", replicasPerPrimary.ToString(System.Globalization.CultureInfo.InvariantCulture), "--cluster-yes"]);
            var deadline = Stopwatch.StartNew();
            foreach (var node in nodes)
            {
                while (!await IsReadyAsync(node, nodes.Count))
                {
                    if (deadline.Elapsed > ReadyTimeout)
                    {
                        throw new InvalidOperationException($"The cluster did not reach cluster_state:ok with every replica online within {ReadyTimeout}: {node.Log()}");
                    }

                    await Task.Delay(100);
                }
            }

            return new RedisCluster(nodes);
        }
        catch
        {
            foreach (var node in nodes)
            {
                await node.DisposeAsync();
            }

            throw;
        }
    }

    /// <summary>The node that is now a replica of <paramref name="primary"/> (from each node's <c>INFO replication</c>).</summary>
    public async Task<RedisServer> ReplicaOfAsync(RedisServer primary)
    {
        foreach (var node in Nodes.Where(n => n != primary))
        {
            var replication = await node.RawAsync("INFO replication");
            if (replication.Contains("role:slave", StringComparison.Ordinal) && replication.Contains($"master_port:{primary.Port}\r", StringComparison.Ordinal))
            {
                return node;
            }
        }

        throw new InvalidOperationException($"No node is a replica of {primary.EndPoint}.");
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in Nodes)
        {
            await node.DisposeAsync();
        }
    }

    private static async Task<bool> IsReadyAsync(RedisServer node, int nodes)
    {
        var info = await RunCliAsync(["-p", node.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "cluster", "info"]);
        if (!info.Contains("cluster_state:ok", StringComparison.Ordinal) || !info.Contains($"cluster_known_nodes:{nodes}", StringComparison.Ordinal))
        {
            return false;
        }

        var replication = await node.RawAsync("INFO replication");
        return !replication.Contains("role:slave", StringComparison.Ordinal) || replication.Contains("master_link_status:up", StringComparison.Ordinal);
    }

    private static async Task<string> RunCliAsync(IReadOnlyList<string> arguments)
    {
        var start = new ProcessStartInfo(RedisServer.Binary("redis-cli"))
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start redis-cli.");
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"redis-cli {string.Join(' ', arguments)} failed ({process.ExitCode}): {await output} {await error}");
        }

        return await output;
    }
}
