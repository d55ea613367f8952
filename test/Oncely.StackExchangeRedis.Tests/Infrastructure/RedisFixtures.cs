using StackExchange.Redis;

namespace Oncely.StackExchangeRedis.Tests.Infrastructure;

/// <summary>
/// The servers every Redis test class shares: one standalone server and one three-primary cluster, started once for the
/// test run (the first collection that asks starts them) and stopped when the last collection using them is done.
/// Collections run in parallel; each asks for them through its own collection fixture.
/// </summary>
public static class SharedRedis
{
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static readonly Lock StartGate = new();
    private static Task<RedisServer>? s_standalone;
    private static Task<RedisCluster>? s_cluster;
    private static int s_users;

    static SharedRedis()
    {
        // A safety net: the test host exiting without disposing (a crash, a cancelled run) still stops the servers.
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                if (s_standalone is { IsCompletedSuccessfully: true } standalone)
                {
                    standalone.Result.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(5));
                }

                if (s_cluster is { IsCompletedSuccessfully: true } cluster)
                {
                    cluster.Result.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(5));
                }
            }
            catch (AggregateException)
            {
            }
        };
    }

    public static async Task AcquireAsync()
    {
        await Gate.WaitAsync();
        try
        {
            s_users++;
        }
        finally
        {
            Gate.Release();
        }
    }

    public static Task<RedisServer> StandaloneAsync()
    {
        lock (StartGate)
        {
            return s_standalone ??= RedisServer.StartNewAsync();
        }
    }

    public static Task<RedisCluster> ClusterAsync()
    {
        lock (StartGate)
        {
            return s_cluster ??= RedisCluster.StartNewAsync();
        }
    }

    public static async Task ReleaseAsync()
    {
        await Gate.WaitAsync();
        try
        {
            if (--s_users > 0)
            {
                return;
            }

            if (s_standalone is { } standalone)
            {
                s_standalone = null;
                await (await standalone).DisposeAsync();
            }

            if (s_cluster is { } cluster)
            {
                s_cluster = null;
                await (await cluster).DisposeAsync();
            }
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>A connection as the store makes its own: no abort on connect failure, fail fast while disconnected.</summary>
    public static Task<ConnectionMultiplexer> ConnectAsync(string configuration)
    {
        var options = ConfigurationOptions.Parse(configuration);
        options.AbortOnConnectFail = false;
        options.BacklogPolicy = BacklogPolicy.FailFast;
        return ConnectionMultiplexer.ConnectAsync(options);
    }
}

/// <summary>The shared standalone server and a connection to it, for one collection.</summary>
public sealed class StandaloneRedisFixture : IAsyncLifetime
{
    public RedisServer Server { get; private set; } = null!;

    public ConnectionMultiplexer Connection { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        await SharedRedis.AcquireAsync();
        Server = await SharedRedis.StandaloneAsync();
        Connection = await SharedRedis.ConnectAsync(Server.EndPoint);
    }

    public async Task DisposeAsync()
    {
        await Connection.DisposeAsync();
        await SharedRedis.ReleaseAsync();
    }
}

/// <summary>The shared three-primary cluster and a connection to it, for one collection.</summary>
public sealed class ClusterRedisFixture : IAsyncLifetime
{
    public RedisCluster Cluster { get; private set; } = null!;

    public ConnectionMultiplexer Connection { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        await SharedRedis.AcquireAsync();
        Cluster = await SharedRedis.ClusterAsync();
        Connection = await SharedRedis.ConnectAsync(Cluster.Configuration);
    }

    public async Task DisposeAsync()
    {
        await Connection.DisposeAsync();
        await SharedRedis.ReleaseAsync();
    }
}

/// <summary>A standalone server of its own, for a class that stops, pauses or reconfigures it.</summary>
public sealed class PrivateRedisFixture : IAsyncLifetime
{
    public RedisServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await RedisServer.StartNewAsync(persistent: true);

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

[CollectionDefinition(Name)]
public sealed class StandaloneCollection : ICollectionFixture<StandaloneRedisFixture>
{
    public const string Name = "Redis standalone";
}

[CollectionDefinition(Name)]
public sealed class StandaloneSpecificationCollection : ICollectionFixture<StandaloneRedisFixture>
{
    public const string Name = "Redis standalone conformance";
}

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterRedisFixture>
{
    public const string Name = "Redis Cluster";
}

[CollectionDefinition(Name)]
public sealed class ClusterSpecificationCollection : ICollectionFixture<ClusterRedisFixture>
{
    public const string Name = "Redis Cluster conformance";
}
