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

    [LoggerMessage(IdempotencyEventIds.RedisReplicaAcknowledgementsRequired, LogLevel.Information,
        "Redis idempotency store: every reservation, recovery point, lease renewal and completion waits (WAIT, up to {Timeout}) until {Acknowledgements} replica(s) hold it ({Reason}), so a failover to a replica cannot lose a record a client was answered from; a primary without that many healthy replicas refuses writes (503), so run at least one more replica per primary than this")]
    public static partial void ReplicaAcknowledgementsRequired(ILogger logger, int acknowledgements, string reason, TimeSpan timeout);

    [LoggerMessage(IdempotencyEventIds.RedisNoReplicas, LogLevel.Warning,
        "Redis idempotency store: none of the {Primaries} primary server(s) has a replica, so writes cannot wait for one: a node that is lost (crash without persistence, failed disk, replaced machine) loses its idempotency records, and a retry of a lost key runs the operation again. Give every primary replicas (writes then wait for one by default)")]
    public static partial void NoReplicas(ILogger logger, int primaries);

    [LoggerMessage(IdempotencyEventIds.RedisReplicaAcknowledgementsOff, LogLevel.Warning,
        "Redis idempotency store: ReplicaAcknowledgements is 0, set on purpose, although {Replicas} replica(s) exist: writes do not wait for replicas, so a failover to a replica that lags can lose reservations and completions the store already reported, and a retry of such a key runs the operation a second time")]
    public static partial void ReplicaAcknowledgementsOff(ILogger logger, int replicas);

    [LoggerMessage(IdempotencyEventIds.RedisReservationNotGivenBack, LogLevel.Warning,
        "Redis idempotency store: the reservation of {Key} (not acknowledged by the replicas, or abandoned by its caller) could not be given back; retries of that key are answered 409 until its lease runs out")]
    public static partial void ReservationNotGivenBack(ILogger logger, Exception exception, string key);

    [LoggerMessage(IdempotencyEventIds.RedisPrimariesLackReplicas, LogLevel.Warning,
        "Redis idempotency store: writes wait for {Required} replica(s), but these primaries have fewer connected replicas now: {Primaries}; writes to their slots fail closed (503) until they have enough. Attach replicas, or set ReplicaAcknowledgements on purpose")]
    public static partial void PrimariesLackReplicas(ILogger logger, string primaries, int required);
}
