using StackExchange.Redis;

namespace Oncely.StackExchangeRedis.Tests.Infrastructure;

/// <summary>Stores on a shared connection, each under a key prefix of its own so tests never see each other's keys.</summary>
public static class StoreFactory
{
    private static int s_prefixes;

    public static string NewPrefix(string label) => $"t{Interlocked.Increment(ref s_prefixes)}-{label}-{Guid.NewGuid().ToString("N")[..6]}";

    internal static RedisIdempotencyStore Create(IConnectionMultiplexer connection, string prefix, Action<RedisIdempotencyStoreOptions>? configure = null)
    {
        var options = new RedisIdempotencyStoreOptions { KeyPrefix = prefix };
        configure?.Invoke(options);
        return new RedisIdempotencyStore(connection, options);
    }

    public static IdempotencyRecordId NewId(string tenant = "tenant-a", string operation = "POST /payments")
        => new(tenant, operation, "key-" + Guid.NewGuid().ToString("N"));

    public static string Fingerprint(char c) => new(c, 64);
}
