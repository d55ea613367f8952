using StackExchange.Redis;

namespace Oncely.StackExchangeRedis;

/// <summary>
/// Configures the Redis idempotency store: where it connects, how its keys are named, how long one call may take and
/// whether a write waits for replicas.
/// </summary>
public sealed class RedisIdempotencyStoreOptions
{
    /// <summary>The default key prefix, <c>oncely</c>.</summary>
    public const string DefaultKeyPrefix = "oncely";

    /// <summary>The longest key prefix accepted.</summary>
    public const int MaxKeyPrefixLength = 64;

    /// <summary>
    /// The connection the store uses. Default <see langword="null"/>: the store connects with <see cref="Configuration"/>,
    /// or, when that is also unset, resolves <see cref="IConnectionMultiplexer"/> from the application's services. A
    /// connection given here (or found in the services) is not disposed by the store.
    /// </summary>
    /// <remarks>
    /// Build it with <c>AbortOnConnectFail = false</c> and <c>BacklogPolicy = BacklogPolicy.FailFast</c>, as the store
    /// does for a connection it makes itself: with the library's default backlog, calls made while Redis is down wait in a
    /// queue until their timeout instead of failing closed at once.
    /// </remarks>
    public IConnectionMultiplexer? ConnectionMultiplexer { get; set; }

    /// <summary>
    /// A StackExchange.Redis configuration string (for example <c>redis-1:6379,redis-2:6379,password=…,ssl=true</c>) the
    /// store connects (and owns its connection) with, on first use. Default <see langword="null"/>. Ignored when
    /// <see cref="ConnectionMultiplexer"/> is set. The store adds <c>abortConnect=false</c> and a fail-fast backlog.
    /// </summary>
    public string? Configuration { get; set; }

    /// <summary>
    /// The first part of every key the store writes, so several applications (or environments) can share one Redis.
    /// Default <c>oncely</c>. 1 to 64 characters: letters, digits, <c>-</c>, <c>_</c>, <c>.</c> and <c>:</c>.
    /// </summary>
    public string KeyPrefix { get; set; } = DefaultKeyPrefix;

    /// <summary>
    /// The Redis database number. Default -1: the connection's default database (0 unless the configuration says
    /// otherwise). Redis Cluster has database 0 only.
    /// </summary>
    public int Database { get; set; } = -1;

    /// <summary>
    /// The most time one store call may take before it fails with <see cref="IdempotencyStoreUnavailableException"/> (the
    /// caller then fails closed). Default 5 seconds; between 100 milliseconds and 1 hour.
    /// </summary>
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How many replicas must acknowledge a write (Redis <c>WAIT</c>) before the store reports it: a reservation before the
    /// operation runs, a recovery point, a lease renewal, a completion. Default <see langword="null"/>, automatic: 1 when
    /// the topology has replicas (a cluster whose primaries have replicas, a primary with replicas), so a failover to a
    /// replica never loses a record a client was answered from; 0 when it has none (the store then logs a warning: a lost
    /// node loses its records). The mode is decided once, when the store first connects, and logged (events 1205–1207).
    /// Set 0 to opt out on purpose: writes no longer wait, and a failover to a lagging replica can lose reservations and
    /// completions, so an operation can run twice. With 1 or more, a write that too few replicas acknowledge within
    /// <see cref="ReplicaAcknowledgementTimeout"/> fails closed, and a primary with fewer healthy replicas than this
    /// refuses every write (run this many replicas plus one per primary). Between 0 and 16 when set.
    /// </summary>
    public int? ReplicaAcknowledgements { get; set; }

    /// <summary>
    /// How long a write waits for <see cref="ReplicaAcknowledgements"/> replicas. Default 1 second; at least 10
    /// milliseconds and less than <see cref="CommandTimeout"/>. Only used when writes wait for replicas (see
    /// <see cref="ReplicaAcknowledgements"/>).
    /// </summary>
    public TimeSpan ReplicaAcknowledgementTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The most key-reuse audit entries kept: the stream is capped at about this many (Redis trims whole blocks, so a
    /// few more may stay), oldest first; the host's sweeper also deletes entries older than
    /// <c>IdempotencyMaintenanceOptions.AuditRetention</c>. Default 10,000; between 100 and 10,000,000.
    /// </summary>
    public int AuditMaxEntries { get; set; } = 10_000;

    /// <summary>Throws <see cref="InvalidOperationException"/> with a message that says what to change when the options are unusable.</summary>
    internal void Validate()
    {
        if (string.IsNullOrEmpty(KeyPrefix) || KeyPrefix.Length > MaxKeyPrefixLength || !KeyPrefix.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':'))
        {
            throw new InvalidOperationException(
                $"RedisIdempotencyStoreOptions.KeyPrefix is \"{KeyPrefix}\"; use 1 to {MaxKeyPrefixLength} letters (a-z, A-Z), digits, '-', '_', '.' or ':' (no braces: the store adds its own hash tags).");
        }

        if (Database < -1)
        {
            throw new InvalidOperationException($"RedisIdempotencyStoreOptions.Database is {Database}; use -1 (the connection's default database) or a database number (0 or more).");
        }

        if (CommandTimeout < TimeSpan.FromMilliseconds(100) || CommandTimeout > TimeSpan.FromHours(1))
        {
            throw new InvalidOperationException(
                $"RedisIdempotencyStoreOptions.CommandTimeout is {CommandTimeout}; set it between 100 milliseconds and 1 hour (default 5 seconds).");
        }

        if (ReplicaAcknowledgements is < 0 or > 16)
        {
            throw new InvalidOperationException(
                $"RedisIdempotencyStoreOptions.ReplicaAcknowledgements is {ReplicaAcknowledgements}; set it between 0 (do not wait: a failover can lose records) and 16, never above the number of replicas each primary has, or leave it unset (the default: 1 when the topology has replicas, 0 when it has none).");
        }

        if (ReplicaAcknowledgementTimeout < TimeSpan.FromMilliseconds(10) || ReplicaAcknowledgementTimeout >= CommandTimeout)
        {
            throw new InvalidOperationException(
                $"RedisIdempotencyStoreOptions.ReplicaAcknowledgementTimeout is {ReplicaAcknowledgementTimeout}; set it to at least 10 milliseconds and less than CommandTimeout ({CommandTimeout}), default 1 second.");
        }

        if (AuditMaxEntries is < 100 or > 10_000_000)
        {
            throw new InvalidOperationException(
                $"RedisIdempotencyStoreOptions.AuditMaxEntries is {AuditMaxEntries}; set it between 100 and 10,000,000 (default 10,000).");
        }

        if (ConnectionMultiplexer is null && Configuration is not null)
        {
            if (string.IsNullOrWhiteSpace(Configuration))
            {
                throw new InvalidOperationException(
                    "RedisIdempotencyStoreOptions.Configuration is empty; give a StackExchange.Redis configuration string such as \"redis:6379\", set ConnectionMultiplexer, or leave both unset to use the IConnectionMultiplexer registered in the services.");
            }

            try
            {
                _ = ConfigurationOptions.Parse(Configuration);
            }
            catch (ArgumentException e)
            {
                throw new InvalidOperationException(
                    $"RedisIdempotencyStoreOptions.Configuration is not a valid StackExchange.Redis configuration string: {e.Message}", e);
            }
        }
    }
}
