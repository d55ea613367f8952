using System.Diagnostics;

namespace Oncely.StackExchangeRedis.Tests.Infrastructure;

/// <summary>
/// A throw-away Redis Cluster of three primaries (no replicas): three <see cref="RedisServer"/>s with
/// <c>cluster-enabled yes</c> and a cluster configuration file of their own, joined with
/// <c>redis-cli --cluster create … --cluster-replicas 0 --cluster-yes</c>; ready once every node reports
/// <c>cluster_state:ok</c>.
/// </summary>
public sealed class RedisCluster : IAsyncDisposable
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(30);

    private RedisCluster(IReadOnlyList<RedisServer> nodes) => Nodes = nodes;

    public IReadOnlyList<RedisServer> Nodes { get; }

    /// <summary>A StackExchange.Redis configuration string naming every node.</summary>
    public string Configuration => string.Join(',', Nodes.Select(n => n.EndPoint));

    public static async Task<RedisCluster> StartNewAsync()
    {
        var nodes = new List<RedisServer>();
        try
        {
            foreach (var _ in Enumerable.Range(0, 3))
            {
                nodes.Add(await RedisServer.StartNewAsync(persistent: false,
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"));
            }

            await RunCliAsync(["--cluster", "create", .. nodes.Select(n => n.EndPoint), "--cluster-replicas", "0", "--cluster-yes"]);
            var deadline = Stopwatch.StartNew();
            foreach (var node in nodes)
            {
                while (!(await RunCliAsync(["-p", node.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "cluster", "info"])).Contains("cluster_state:ok", StringComparison.Ordinal))
                {
                    if (deadline.Elapsed > ReadyTimeout)
                    {
                        throw new InvalidOperationException($"The cluster did not reach cluster_state:ok within {ReadyTimeout}: {node.Log()}");
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

    public async ValueTask DisposeAsync()
    {
        foreach (var node in Nodes)
        {
            await node.DisposeAsync();
        }
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
