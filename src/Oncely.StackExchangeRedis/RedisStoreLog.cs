using Microsoft.Extensions.Logging;

namespace Oncely.StackExchangeRedis;

/// <summary>The Redis store's log events (ids 1200–1219, listed in <see cref="IdempotencyEventIds"/>).</summary>
internal static partial class RedisStoreLog
{
    [LoggerMessage(IdempotencyEventIds.RedisReplicaAcknowledgementMissing, LogLevel.Warning,
        "Redis idempotency store: a write to {Key} was acknowledged by {Acknowledged} of the {Required} replicas required within {Timeout}; the call fails closed (a reservation is released again, a completion is retried)")]
    public static partial void ReplicaAcknowledgementMissing(ILogger logger, string key, long acknowledged, int required, TimeSpan timeout);

    [LoggerMessage(IdempotencyEventIds.RedisConnectionFailed, LogLevel.Warning,
        "Redis idempotency store: the {ConnectionType} connection to {EndPoint} failed ({FailureType}); idempotent requests fail closed with 503 until it is restored")]
    public static partial void ConnectionFailed(ILogger logger, Exception? exception, string? endPoint, string connectionType, string failureType);

    [LoggerMessage(IdempotencyEventIds.RedisConnectionRestored, LogLevel.Information,
        "Redis idempotency store: the {ConnectionType} connection to {EndPoint} is restored")]
    public static partial void ConnectionRestored(ILogger logger, string? endPoint, string connectionType);

    [LoggerMessage(IdempotencyEventIds.RedisEvictionPolicyUnsafe, LogLevel.Error,
        "Redis idempotency store: {EndPoint} has maxmemory-policy {Policy}; under memory pressure Redis may evict idempotency records, and a retry of an evicted key executes again. Set maxmemory-policy noeviction (writes then fail closed when memory is full)")]
    public static partial void EvictionPolicyUnsafe(ILogger logger, string? endPoint, string policy);

    [LoggerMessage(IdempotencyEventIds.RedisStoreReady, LogLevel.Information,
        "Redis idempotency store ready: {Primaries} primary server(s) ({ServerType}, Redis {Version}), key prefix {Prefix}, replica acknowledgements required: {Acknowledgements}")]
    public static partial void StoreReady(ILogger logger, int primaries, string serverType, string version, string prefix, int acknowledgements);
}
