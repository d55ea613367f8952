using System.Buffers.Text;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Oncely.StackExchangeRedis;

/// <summary>
/// Idempotency records in Redis, shared by every instance of an app, on a standalone server (with or without replicas)
/// or on Redis Cluster. Every transition is one Lua script (<see cref="RedisScripts"/>) that Redis runs atomically with
/// its own clock; records carry a TTL and need no sweeper; the keys one transition touches share a hash tag
/// (<see cref="RedisKeyLayout"/>), so each script runs on one primary of a cluster.
/// </summary>
/// <remarks>
/// Durability is Redis's: replication is asynchronous, so a failover can lose a write the primary acknowledged. Unless
/// the application opts out (<see cref="RedisIdempotencyStoreOptions.ReplicaAcknowledgements"/> = 0), a topology with
/// replicas makes the store wait (<c>WAIT</c>) until a replica has every write that grants or records progress, and fail
/// closed when none acknowledges in time; a reservation that is not acknowledged, whatever ended the wait, is given back.
/// </remarks>
internal sealed partial class RedisIdempotencyStore
    : IIdempotencyStore, IIdempotencyAuditStore, IIdempotencyStoreLimits, IIdempotencyStoreInitializer, IIdempotencyStoreAdministration,
      IAsyncDisposable, IDisposable
{
    /// <summary>The longest key the store accepts: every length the host allows (Redis keys have no index limit that matters here).</summary>
    internal const int MaxKeyLengthLimit = 4096;

    /// <summary>Redis 6.2 brought exclusive stream ranges and <c>XTRIM MINID</c>, which the audit uses.</summary>
    private static readonly Version MinimumServerVersion = new(6, 2);

    private const int Undecided = -1;

    /// <summary>How many numbers the reservation script's first answer element holds: outcome, s, t, l, e, c, a.</summary>
    internal const int ReservationNumbers = 7;

    private static readonly string[] Scripts =
        [RedisScripts.Reserve, RedisScripts.Complete, RedisScripts.Release, RedisScripts.SetRecoveryPoint, RedisScripts.RenewLease, RedisScripts.Get, RedisScripts.PurgeAudit, RedisScripts.Erase];

    private readonly RedisKeyLayout _keys;
    private readonly int _databaseNumber;
    private readonly TimeSpan _timeout;
    private readonly int? _configuredAcknowledgements;
    private readonly long _acknowledgementTimeoutMilliseconds;
    private readonly int _auditCap;
    private readonly ILogger _logger;
    private readonly ConfigurationOptions? _ownConfiguration;
    private readonly Lock _gate = new();
    private volatile IConnectionMultiplexer? _multiplexer;
    private volatile IDatabase? _database;
    private Task<IConnectionMultiplexer>? _connecting;
    private Task<int>? _deciding;

    // The replicas each progress write waits for; Undecided until the mode is decided (automatic mode, first write).
    private int _acknowledgements = Undecided;
    private bool _disposed;

    /// <summary>Creates the store on a connection the application owns.</summary>
    public RedisIdempotencyStore(IConnectionMultiplexer multiplexer, RedisIdempotencyStoreOptions options, ILogger? logger = null)
        : this(options, logger)
    {
        ArgumentNullException.ThrowIfNull(multiplexer);
        Attach(multiplexer);
    }

    /// <summary>Creates the store on a connection it makes (on first use) from <paramref name="configuration"/> and owns.</summary>
    public RedisIdempotencyStore(string configuration, RedisIdempotencyStoreOptions options, ILogger? logger = null)
        : this(options, logger)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(configuration);
        _ownConfiguration = ConfigurationOptions.Parse(configuration);
        _ownConfiguration.AbortOnConnectFail = false;

        // Fail closed at once while disconnected, rather than queue the call until its timeout.
        _ownConfiguration.BacklogPolicy = BacklogPolicy.FailFast;
    }

    private RedisIdempotencyStore(RedisIdempotencyStoreOptions options, ILogger? logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _keys = new RedisKeyLayout(options.KeyPrefix);
        _databaseNumber = options.Database;
        _timeout = options.CommandTimeout;
        _configuredAcknowledgements = options.ReplicaAcknowledgements;
        if (options.ReplicaAcknowledgements is { } configured)
        {
            _acknowledgements = configured;
        }

        _acknowledgementTimeoutMilliseconds = (long)Math.Ceiling(options.ReplicaAcknowledgementTimeout.TotalMilliseconds);
        _auditCap = options.AuditMaxEntries;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <inheritdoc />
    public int MaxKeyLength => MaxKeyLengthLimit;

    /// <summary>The store's key layout.</summary>
    internal RedisKeyLayout Keys => _keys;

    /// <summary>The connection, once made.</summary>
    internal IConnectionMultiplexer? Multiplexer => _multiplexer;

    /// <inheritdoc />
    public ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fingerprint);
        return Volatile.Read(ref _acknowledgements) == 0 && _database is { } database
            ? ReserveUnacknowledgedAsync(database, id, fingerprint, lease, expiration, cancellationToken)
            : ReserveAcknowledgedAsync(id, fingerprint, lease, expiration, cancellationToken);
    }

    /// <summary>The reservation where writes wait for replicas (or before the connection and the mode are known).</summary>
    private async ValueTask<ReservationResult> ReserveAcknowledgedAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var started = Stopwatch.GetTimestamp();
        var bucket = RedisKeyLayout.Bucket(id.Tenant, id.Key);
        var key = _keys.Record(bucket, id);

        // The reservation and its acknowledgement run to their end (bounded by CommandTimeout) whether or not the caller
        // waits: a reservation that grants execution is either acknowledged and handed to a caller that is still there, or
        // given back. A caller that gives up first (the client hung up, the engine's StoreTimeout) leaves nothing behind
        // that would answer 409 to every retry until the lease runs out.
        var reserving = ReserveAndAcknowledgeAsync(id, key, _keys.Fence(bucket), fingerprint, lease, expiration, started);
        try
        {
            return await reserving.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            _ = GiveBackWhenGrantedAsync(reserving, key);
            throw;
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex, cancellationToken))
        {
            throw RedisFailures.Unavailable("reserve a record", ex);
        }
    }

    /// <summary>
    /// The common case, connected and with no replicas to wait for: the script call alone, bounded by one wait that
    /// ends at the deadline or when the caller gives up (one state machine, one wait, on the request path).
    /// </summary>
    /// <remarks>
    /// As on the acknowledged path, the reservation runs to its end whether or not the caller waits: when the caller
    /// gives up or the deadline passes first, a reservation that turns out to grant execution is given back, fenced,
    /// because nobody runs it.
    /// </remarks>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ReservationResult> ReserveUnacknowledgedAsync(
        IDatabase database, IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var started = Stopwatch.GetTimestamp();
        var bucket = RedisKeyLayout.Bucket(id.Tenant, id.Key);
        var key = _keys.Record(bucket, id);
        try
        {
            var keys = ScriptArguments.Keys(key, _keys.Fence(bucket));
            var values = ScriptArguments.Values(fingerprint, Milliseconds(lease), Milliseconds(expiration));
            var reserving = database.ScriptEvaluateAsync(RedisScripts.Reserve, keys, values);
            RedisResult answer;
            try
            {
                answer = await reserving.WaitAsync(Remaining(started), cancellationToken).ConfigureAwait(false);
                ScriptArguments.Return(keys, values);
            }
            catch (Exception e) when (e is OperationCanceledException or TimeoutException)
            {
                _ = GiveBackWhenGrantedAsync(reserving, key);
                throw;
            }

            return ReadReservation(id, (RedisResult[])answer!, fingerprint);
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex, cancellationToken))
        {
            throw RedisFailures.Unavailable("reserve a record", ex);
        }
    }

    // The answer layout of Reserve: {"outcome s t l e c a", f, p[, h, H, b, o]}.
    private static ReservationResult ReadReservation(IdempotencyRecordId id, RedisResult[] answer, string fingerprint)
    {
        Span<long> numbers = stackalloc long[ReservationNumbers];
        ReadNumbers((RedisValue)answer[0], numbers);
        var outcome = (ReservationOutcome)numbers[0];
        var state = (IdempotencyRecordState)numbers[1];
        var record = new IdempotencyRecord
        {
            Id = id,

            // Every outcome but a reused key answers with the caller's own fingerprint: its string is kept, not read again.
            Fingerprint = outcome == ReservationOutcome.FingerprintMismatch ? (string)answer[1]! : fingerprint,
            State = state,
            FencingToken = numbers[2],
            LeaseExpiresAt = FromMicroseconds(numbers[3]),
            ExpiresAt = FromMicroseconds(numbers[4]),
            RecoveryPoint = (string?)answer[2],
            Attempts = (int)numbers[6],
            Response = outcome == ReservationOutcome.Completed && state == IdempotencyRecordState.Completed && answer.Length >= 7 ? ReadResponse(answer, 3) : null,
        };
        return new ReservationResult(outcome, record);
    }

    /// <summary>Reads the reservation's numbers (decimal integers separated by single spaces) without making a string.</summary>
    internal static void ReadNumbers(ReadOnlyMemory<byte> text, Span<long> numbers)
    {
        var rest = text.Span;
        for (var i = 0; i < numbers.Length; i++)
        {
            if (!Utf8Parser.TryParse(rest, out long value, out var consumed) || (consumed < rest.Length && rest[consumed] != (byte)' '))
            {
                throw new RedisException("The Redis idempotency store's reservation script answered numbers it cannot read.");
            }

            numbers[i] = value;
            rest = rest[Math.Min(consumed + 1, rest.Length)..];
        }
    }

    /// <summary>The fencing token of a reservation answer that grants execution (acquired, taken over); otherwise null.</summary>
    internal static long? Granted(RedisResult[] answer)
    {
        Span<long> numbers = stackalloc long[ReservationNumbers];
        ReadNumbers((RedisValue)answer[0], numbers);
        return (ReservationOutcome)numbers[0] is ReservationOutcome.Acquired or ReservationOutcome.TakenOver ? numbers[2] : null;
    }

    /// <summary>A reservation script call the caller stopped waiting for: once it answers, a granted reservation is given back.</summary>
    private async Task GiveBackWhenGrantedAsync(Task<RedisResult> reserving, RedisKey key)
    {
        RedisResult answer;
        try
        {
            answer = await reserving.ConfigureAwait(false);
        }
        catch (Exception e) when (RedisFailures.IsUnavailable(e, CancellationToken.None))
        {
            return; // nothing was granted
        }

        if (Granted((RedisResult[])answer!) is { } token)
        {
            await ReleaseUnacknowledgedAsync(key, token).ConfigureAwait(false);
        }
    }

    private async Task<ReservationResult> ReserveAndAcknowledgeAsync(
        IdempotencyRecordId id, RedisKey key, RedisKey fence, string fingerprint, TimeSpan lease, TimeSpan expiration, long started)
    {
        var required = await RequiredAcknowledgementsAsync(started, CancellationToken.None).ConfigureAwait(false);
        var answer = (RedisResult[])(await EvaluateAsync(
            RedisScripts.Reserve,
            [key, fence],
            [fingerprint, Milliseconds(lease), Milliseconds(expiration)],
            started,
            CancellationToken.None).ConfigureAwait(false))!;
        var reservation = ReadReservation(id, answer, fingerprint);
        if (reservation.Outcome is ReservationOutcome.Acquired or ReservationOutcome.TakenOver && required > 0)
        {
            await AcknowledgeReservationAsync(key, reservation.Record.FencingToken, required, started).ConfigureAwait(false);
        }

        return reservation;
    }

    /// <summary>
    /// The caller gave up while a reservation was under way: once it ends, a reservation that granted execution (and was
    /// therefore acknowledged, or it would have been given back already) is given back, fenced, because nobody runs it.
    /// </summary>
    private async Task GiveBackWhenGrantedAsync(Task<ReservationResult> reserving, RedisKey key)
    {
        ReservationResult result;
        try
        {
            result = await reserving.ConfigureAwait(false);
        }
        catch (Exception e) when (RedisFailures.IsUnavailable(e, CancellationToken.None))
        {
            // Nothing was granted: the reservation failed, and gave itself back if it was not acknowledged.
            return;
        }

        if (result.Outcome is ReservationOutcome.Acquired or ReservationOutcome.TakenOver)
        {
            await ReleaseUnacknowledgedAsync(key, result.Record.FencingToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Repeating a completion with the same token and exactly the same answer reports <see langword="true"/> again: a
    /// completion retried after a lost reply or a missing replica acknowledgement is not mistaken for a lost lease.
    /// </remarks>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(response);
        cancellationToken.ThrowIfCancellationRequested();
        var started = Stopwatch.GetTimestamp();
        var key = _keys.Record(id);

        // A copy: the caller's buffer may be pooled and reused as soon as this returns, even if the store gave up
        // waiting (its deadline) before the client library wrote the command.
        RedisValue body = response.Body.ToArray();
        try
        {
            var keys = ScriptArguments.Keys(key);
            var values = ScriptArguments.Values(fencingToken, response.StatusCode, StoredHeaders.Serialize(response.Headers), body, response.BodyOmitted ? 1 : 0, Milliseconds(expiration));
            var changed = (long)await EvaluateAsync(RedisScripts.Complete, keys, values, started, cancellationToken).ConfigureAwait(false);
            ScriptArguments.Return(keys, values);
            if (changed == 0)
            {
                return false;
            }

            await RequireReplicasAsync(key, started, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex, cancellationToken))
        {
            throw RedisFailures.Unavailable("complete a record", ex);
        }
    }

    /// <inheritdoc />
    public async ValueTask<bool> TryReleaseAsync(IdempotencyRecordId id, long fencingToken, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var started = Stopwatch.GetTimestamp();
        try
        {
            return (long)await EvaluateAsync(RedisScripts.Release, [_keys.Record(id)], [fencingToken], started, cancellationToken).ConfigureAwait(false) == 1;
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex, cancellationToken))
        {
            throw RedisFailures.Unavailable("release a record", ex);
        }
    }

    /// <inheritdoc />
    public async ValueTask<bool> TrySetRecoveryPointAsync(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(recoveryPoint);
        cancellationToken.ThrowIfCancellationRequested();
        var started = Stopwatch.GetTimestamp();
        var key = _keys.Record(id);
        try
        {
            if ((long)await EvaluateAsync(RedisScripts.SetRecoveryPoint, [key], [fencingToken, recoveryPoint, Milliseconds(lease)], started, cancellationToken).ConfigureAwait(false) != 1)
            {
                return false;
            }

            await RequireReplicasAsync(key, started, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex, cancellationToken))
        {
            throw RedisFailures.Unavailable("set a recovery point", ex);
        }
    }

    /// <inheritdoc />
    public async ValueTask<bool> TryRenewLeaseAsync(IdempotencyRecordId id, long fencingToken, TimeSpan lease, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var started = Stopwatch.GetTimestamp();
        var key = _keys.Record(id);
        try
        {
            if ((long)await EvaluateAsync(RedisScripts.RenewLease, [key], [fencingToken, Milliseconds(lease)], started, cancellationToken).ConfigureAwait(false) != 1)
            {
                return false;
            }

            await RequireReplicasAsync(key, started, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex, cancellationToken))
        {
            throw RedisFailures.Unavailable("renew a lease", ex);
        }
    }

    /// <inheritdoc />
    public async ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var started = Stopwatch.GetTimestamp();
        try
        {
            var result = await EvaluateAsync(RedisScripts.Get, [_keys.Record(id)], [], started, cancellationToken).ConfigureAwait(false);
            if (result.IsNull)
            {
                return null;
            }

            var answer = (RedisResult[])result!;
            return ReadRecord(id, answer, withResponse: (int)answer[3] == (int)IdempotencyRecordState.Completed);
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex, cancellationToken))
        {
            throw RedisFailures.Unavailable("read a record", ex);
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// One <c>XADD … MAXLEN ~ AuditMaxEntries</c> on the audit stream: the entry's id is the server's time, and the
    /// stream never holds much more than <see cref="RedisIdempotencyStoreOptions.AuditMaxEntries"/> entries.
    /// </remarks>
    public async ValueTask AppendAsync(KeyReuseAuditEntry entry, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        cancellationToken.ThrowIfCancellationRequested();
        var started = Stopwatch.GetTimestamp();
        NameValueEntry[] fields =
        [
            new(AuditFields.Tenant, entry.Id.Tenant),
            new(AuditFields.Operation, entry.Id.Operation),
            new(AuditFields.Key, entry.Id.Key),
            new(AuditFields.StoredFingerprint, entry.StoredFingerprint),
            new(AuditFields.AttemptedFingerprint, entry.AttemptedFingerprint),
            new(AuditFields.Payload, entry.Payload ?? string.Empty),
            new(AuditFields.OccurredAt, entry.OccurredAt.UtcTicks),
        ];
        try
        {
            var database = await DatabaseAsync(started, cancellationToken).ConfigureAwait(false);
            await database.StreamAddAsync(_keys.Audit, fields, messageId: null, maxLength: _auditCap, useApproximateMaxLength: true)
                .WaitAsync(Remaining(started), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex, cancellationToken))
        {
            throw RedisFailures.Unavailable("append an audit entry", ex);
        }
    }

    /// <inheritdoc />
    /// <remarks>An entry's age is measured from its stream id, the server's time when it was added.</remarks>
    public async ValueTask<int> PurgeAuditAsync(TimeSpan retention, int batchSize, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(retention, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        cancellationToken.ThrowIfCancellationRequested();
        var started = Stopwatch.GetTimestamp();
        try
        {
            return (int)(long)await EvaluateAsync(RedisScripts.PurgeAudit, [_keys.Audit], [Milliseconds(retention), batchSize], started, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex, cancellationToken))
        {
            throw RedisFailures.Unavailable("purge old audit entries", ex);
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Connects (for a connection the store owns), checks that every primary is reachable and runs Redis 6.2 or later,
    /// loads the scripts on every primary (so calls send their SHA-1, not their text), and logs an error when a server's
    /// <c>maxmemory-policy</c> would let Redis evict records. Nothing here is needed for correctness: calls work without it.
    /// </remarks>
    public async ValueTask InitializeAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var started = Stopwatch.GetTimestamp();
        try
        {
            var multiplexer = await ConnectionAsync(started, cancellationToken).ConfigureAwait(false);
            var primaries = Primaries(multiplexer);
            foreach (var server in primaries)
            {
                if (server.Version < MinimumServerVersion)
                {
                    throw new InvalidOperationException(
                        $"The Redis idempotency store needs Redis {MinimumServerVersion} or later; {server.EndPoint} runs {server.Version}.");
                }

                foreach (var script in Scripts)
                {
                    await server.ScriptLoadAsync(script).WaitAsync(Remaining(started), cancellationToken).ConfigureAwait(false);
                }

                await CheckEvictionPolicyAsync(server, started, cancellationToken).ConfigureAwait(false);
            }

            var required = _configuredAcknowledgements is null
                ? await RequiredAcknowledgementsAsync(started, cancellationToken).ConfigureAwait(false)
                : await DecideAcknowledgementsAsync(started, cancellationToken).ConfigureAwait(false);
            RedisStoreLog.StoreReady(_logger, primaries.Count, primaries[0].ServerType.ToString(), primaries[0].Version.ToString(), _keys.Prefix, required);
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex, cancellationToken))
        {
            throw RedisFailures.Unavailable("check its servers and load its scripts", ex);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        var owned = Detach();
        if (owned is not null)
        {
            await owned.CloseAsync().ConfigureAwait(false);
            await owned.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public void Dispose() => Detach()?.Dispose();

    /// <summary>Milliseconds for a script argument, rounded up so a lease is never shorter than asked.</summary>
    private static long Milliseconds(TimeSpan span) => (long)Math.Ceiling(span.TotalMilliseconds);

    /// <summary>A time the scripts store (microseconds since the Unix epoch, server clock).</summary>
    internal static DateTimeOffset FromMicroseconds(long microseconds) => DateTimeOffset.UnixEpoch.AddTicks(microseconds * 10);

    // The answer layout of Get: {5, now, f, s, t, l, e, c, p, a[, h, H, b, o]}.
    private static IdempotencyRecord ReadRecord(IdempotencyRecordId id, RedisResult[] answer, bool withResponse)
    {
        var state = (IdempotencyRecordState)(int)answer[3];
        return new IdempotencyRecord
        {
            Id = id,
            Fingerprint = (string)answer[2]!,
            State = state,
            FencingToken = (long)answer[4],
            LeaseExpiresAt = FromMicroseconds((long)answer[5]),
            ExpiresAt = FromMicroseconds((long)answer[6]),
            RecoveryPoint = (string?)answer[8],
            Attempts = (int)answer[9],
            Response = withResponse && state == IdempotencyRecordState.Completed && answer.Length >= 14 ? ReadResponse(answer, 10) : null,
        };
    }

    private static IdempotentResponse ReadResponse(RedisResult[] answer, int first)
    {
        var status = int.Parse((string?)answer[first] ?? "0", NumberStyles.Integer, CultureInfo.InvariantCulture);
        var headers = StoredHeaders.Deserialize((string?)answer[first + 1]);
        var body = (byte[]?)answer[first + 2] ?? [];
        return new IdempotentResponse(status, headers, body, (string?)answer[first + 3] == "1");
    }

    // Once connected (every call but the first), the client's task is handed back as it is, bounded by the deadline:
    // no state machine of its own on every script call.
    private Task<RedisResult> EvaluateAsync(string script, RedisKey[] keys, RedisValue[] values, long started, CancellationToken cancellationToken)
        => _database is { } database
            ? database.ScriptEvaluateAsync(script, keys, values).WaitAsync(Remaining(started), cancellationToken)
            : ConnectAndEvaluateAsync(script, keys, values, started, cancellationToken);

    private async Task<RedisResult> ConnectAndEvaluateAsync(string script, RedisKey[] keys, RedisValue[] values, long started, CancellationToken cancellationToken)
    {
        var database = await DatabaseAsync(started, cancellationToken).ConfigureAwait(false);
        return await database.ScriptEvaluateAsync(script, keys, values).WaitAsync(Remaining(started), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// After a reservation that grants execution: waits for the replicas, and when they do not acknowledge it, gives the
    /// reservation back (fenced) so nothing runs on a record a failover could lose, then fails closed.
    /// </summary>
    /// <remarks>
    /// Whatever ends the wait without an acknowledgement (too few replicas in time, the connection lost, the store's own
    /// deadline) gives the reservation back: only an acknowledged reservation may let an operation run.
    /// </remarks>
    private async ValueTask AcknowledgeReservationAsync(RedisKey key, long fencingToken, int required, long started)
    {
        try
        {
            await WaitForReplicasAsync(key, required, started, CancellationToken.None).ConfigureAwait(false);
        }
        catch
        {
            await ReleaseUnacknowledgedAsync(key, fencingToken).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Gives a reservation back, fenced (a newer holder is never touched), with a deadline of its own. On the connection
    /// that carried the reservation, so Redis runs it after the pending <c>WAIT</c>, never before the reservation.
    /// </summary>
    private async ValueTask ReleaseUnacknowledgedAsync(RedisKey key, long fencingToken)
    {
        try
        {
            var releasing = Stopwatch.GetTimestamp();
            await EvaluateAsync(RedisScripts.Release, [key], [fencingToken], releasing, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception releaseFailure) when (RedisFailures.IsUnavailable(releaseFailure, CancellationToken.None))
        {
            // The lease then runs out by itself; a retry gets 409 until it does.
            RedisStoreLog.ReservationNotGivenBack(_logger, IdempotencyRedaction.Exception(releaseFailure), IdempotencyRedaction.Text(key.ToString()));
        }
    }

    /// <summary>
    /// <c>WAIT</c> on the record's primary, on the same connection that carried the write, so it counts the replicas that
    /// have every write this connection sent before it (the caller's included).
    /// </summary>
    private async ValueTask RequireReplicasAsync(RedisKey key, long started, CancellationToken cancellationToken)
    {
        var required = await RequiredAcknowledgementsAsync(started, cancellationToken).ConfigureAwait(false);
        if (required > 0)
        {
            await WaitForReplicasAsync(key, required, started, cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask WaitForReplicasAsync(RedisKey key, int required, long started, CancellationToken cancellationToken)
    {
        var multiplexer = await ConnectionAsync(started, cancellationToken).ConfigureAwait(false);
        var server = multiplexer.GetServer(key);
        var acknowledged = (long)await server.ExecuteAsync("WAIT", [required, _acknowledgementTimeoutMilliseconds])
            .WaitAsync(Remaining(started), cancellationToken).ConfigureAwait(false);
        if (acknowledged < required)
        {
            var timeout = TimeSpan.FromMilliseconds(_acknowledgementTimeoutMilliseconds);
            RedisStoreLog.ReplicaAcknowledgementMissing(_logger, IdempotencyRedaction.Text(key.ToString()), acknowledged, required, timeout);
            throw new IdempotencyStoreUnavailableException(
                IdempotencyRedaction.Text($"The Redis idempotency store wrote {key} on {server.EndPoint}, but only {acknowledged} of the {required} required replicas acknowledged it within {timeout}."));
        }
    }

    /// <summary>
    /// How many replicas each progress write waits for: the configured number, or, in automatic mode, 1 when the topology
    /// has replicas and 0 when it has none, decided once (on the first write or at initialisation) and logged.
    /// </summary>
    private ValueTask<int> RequiredAcknowledgementsAsync(long started, CancellationToken cancellationToken)
    {
        var required = Volatile.Read(ref _acknowledgements);
        return required != Undecided ? ValueTask.FromResult(required) : new ValueTask<int>(DecideAcknowledgementsAsync(started, cancellationToken));
    }

    private async Task<int> DecideAcknowledgementsAsync(long started, CancellationToken cancellationToken)
    {
        var multiplexer = await ConnectionAsync(started, cancellationToken).ConfigureAwait(false);
        Task<int> deciding;
        lock (_gate)
        {
            deciding = _deciding ??= DecideCoreAsync(multiplexer);
        }

        try
        {
            return await deciding.WaitAsync(Remaining(started), cancellationToken).ConfigureAwait(false);
        }
        catch when (deciding.IsFaulted)
        {
            lock (_gate)
            {
                if (_deciding == deciding)
                {
                    _deciding = null;
                }
            }

            throw;
        }
    }

    // Counts the replicas the connection knows (a cluster's, from CLUSTER NODES) and those each primary reports
    // (INFO replication: a standalone primary's replicas are not in the connection's list). One found is enough; "none"
    // is only concluded when every primary answered. An explicit setting wins, and is only logged. A primary with fewer
    // connected replicas than writes wait for is named in a warning: its writes answer 503 until it has them.
    private async Task<int> DecideCoreAsync(IConnectionMultiplexer multiplexer)
    {
        var started = Stopwatch.GetTimestamp();
        var servers = multiplexer.GetServers();
        var primaries = servers.Where(s => !s.IsReplica).ToList();
        var unanswered = 0;
        var connected = 0;
        var answered = new List<(string EndPoint, int Replicas)>();
        foreach (var primary in primaries)
        {
            try
            {
                var count = await ConnectedReplicasAsync(primary, started).ConfigureAwait(false);
                connected += count;
                answered.Add((primary.EndPoint?.ToString() ?? "?", count));
            }
            catch (Exception e) when (RedisFailures.IsUnavailable(e, CancellationToken.None))
            {
                unanswered++;
            }
        }

        var replicas = Math.Max(servers.Count(s => s.IsReplica), connected);

        if (replicas == 0 && (primaries.Count == 0 || unanswered > 0) && _configuredAcknowledgements is null)
        {
            throw new IdempotencyStoreUnavailableException(
                $"The Redis idempotency store could not tell whether writes must wait for replicas: {unanswered} of {primaries.Count} primary server(s) did not answer.");
        }

        var required = _configuredAcknowledgements ?? (replicas > 0 ? 1 : 0);
        if (required > 0)
        {
            RedisStoreLog.ReplicaAcknowledgementsRequired(
                _logger,
                required,
                _configuredAcknowledgements is null ? $"automatic: {replicas} replica(s) found" : "set in ReplicaAcknowledgements",
                TimeSpan.FromMilliseconds(_acknowledgementTimeoutMilliseconds));
            var lacking = answered.Where(p => p.Replicas < required).Select(p => $"{p.EndPoint} ({p.Replicas})").ToList();
            if (lacking.Count > 0)
            {
                RedisStoreLog.PrimariesLackReplicas(_logger, string.Join(", ", lacking), required);
            }
        }
        else if (replicas > 0)
        {
            RedisStoreLog.ReplicaAcknowledgementsOff(_logger, replicas);
        }
        else
        {
            RedisStoreLog.NoReplicas(_logger, primaries.Count);
        }

        Volatile.Write(ref _acknowledgements, required);
        return required;
    }

    // INFO replication, inside a one-line script as for the eviction policy (StackExchange.Redis refuses INFO without allowAdmin).
    private async Task<int> ConnectedReplicasAsync(IServer primary, long started)
    {
        var info = (string?)await primary.ExecuteAsync("EVAL", ["return redis.call('INFO', 'replication')", 0])
            .WaitAsync(Remaining(started)).ConfigureAwait(false) ?? string.Empty;
        const string Field = "connected_slaves:";
        var line = info.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith(Field, StringComparison.Ordinal));
        return line is not null && int.TryParse(line.AsSpan(Field.Length), NumberStyles.Integer, CultureInfo.InvariantCulture, out var count) ? count : 0;
    }

    // INFO memory reports the policy. StackExchange.Redis refuses INFO and CONFIG without allowAdmin, so INFO runs inside
    // a one-line script, on this server. A server that refuses it (scripts or INFO disabled, ACL) is simply not checked.
    private async ValueTask CheckEvictionPolicyAsync(IServer server, long started, CancellationToken cancellationToken)
    {
        string info;
        try
        {
            info = (string?)await server.ExecuteAsync("EVAL", ["return redis.call('INFO', 'memory')", 0]).WaitAsync(Remaining(started), cancellationToken).ConfigureAwait(false) ?? string.Empty;
        }
        catch (Exception e) when (e is RedisServerException or RedisCommandException)
        {
            return;
        }

        const string Field = "maxmemory_policy:";
        var line = info.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith(Field, StringComparison.Ordinal));
        var policy = line?[Field.Length..];
        if (policy is not null && !string.Equals(policy, "noeviction", StringComparison.OrdinalIgnoreCase))
        {
            RedisStoreLog.EvictionPolicyUnsafe(_logger, server.EndPoint?.ToString(), policy);
        }
    }

    private List<IServer> Primaries(IConnectionMultiplexer multiplexer)
    {
        var servers = multiplexer.GetServers();
        var primaries = servers.Where(s => !s.IsReplica).ToList();
        var down = primaries.Where(s => !s.IsConnected).Select(s => s.EndPoint?.ToString()).ToList();
        if (primaries.Count == 0 || down.Count > 0)
        {
            throw new IdempotencyStoreUnavailableException(primaries.Count == 0
                ? $"The Redis idempotency store has no connected primary among {servers.Length} known server(s)."
                : $"The Redis idempotency store cannot reach the primary server(s) {string.Join(", ", down)}.");
        }

        return primaries;
    }

    private TimeSpan Remaining(long started)
    {
        var remaining = _timeout - Stopwatch.GetElapsedTime(started);
        return remaining > TimeSpan.Zero
            ? remaining
            : throw new TimeoutException($"The Redis idempotency store did not answer within {_timeout}.");
    }

    private async ValueTask<IDatabase> DatabaseAsync(long started, CancellationToken cancellationToken)
    {
        if (_database is { } database)
        {
            return database;
        }

        var multiplexer = await ConnectionAsync(started, cancellationToken).ConfigureAwait(false);
        return _database = multiplexer.GetDatabase(_databaseNumber);
    }

    private ValueTask<IConnectionMultiplexer> ConnectionAsync(long started, CancellationToken cancellationToken)
        => _multiplexer is { } multiplexer ? ValueTask.FromResult(multiplexer) : new ValueTask<IConnectionMultiplexer>(ConnectOwnAsync(started, cancellationToken));

    private async Task<IConnectionMultiplexer> ConnectOwnAsync(long started, CancellationToken cancellationToken)
    {
        Task<IConnectionMultiplexer> connecting;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            connecting = _connecting ??= ConnectCoreAsync();
        }

        try
        {
            return await connecting.WaitAsync(Remaining(started), cancellationToken).ConfigureAwait(false);
        }
        catch when (connecting.IsFaulted)
        {
            lock (_gate)
            {
                if (_connecting == connecting)
                {
                    _connecting = null;
                }
            }

            throw;
        }
    }

    private async Task<IConnectionMultiplexer> ConnectCoreAsync()
    {
        // abortConnect=false: this returns even when no server answers yet; the connection keeps retrying in the background.
        var multiplexer = await ConnectionMultiplexer.ConnectAsync(_ownConfiguration!).ConfigureAwait(false);
        lock (_gate)
        {
            if (_disposed)
            {
                multiplexer.Dispose();
                throw new ObjectDisposedException(nameof(RedisIdempotencyStore));
            }

            Attach(multiplexer);
        }

        return multiplexer;
    }

    private void Attach(IConnectionMultiplexer multiplexer)
    {
        multiplexer.ConnectionFailed += OnConnectionFailed;
        multiplexer.ConnectionRestored += OnConnectionRestored;
        _multiplexer = multiplexer;
    }

    /// <summary>Stops listening to the connection; returns it when the store owns it (the caller closes it).</summary>
    private IConnectionMultiplexer? Detach()
    {
        IConnectionMultiplexer? multiplexer;
        lock (_gate)
        {
            if (_disposed)
            {
                return null;
            }

            _disposed = true;
            multiplexer = _multiplexer;
        }

        if (multiplexer is null)
        {
            return null;
        }

        multiplexer.ConnectionFailed -= OnConnectionFailed;
        multiplexer.ConnectionRestored -= OnConnectionRestored;
        return _ownConfiguration is null ? null : multiplexer;
    }

    private void OnConnectionFailed(object? sender, ConnectionFailedEventArgs e)
        => RedisStoreLog.ConnectionFailed(_logger, e.Exception is null ? null : IdempotencyRedaction.Exception(e.Exception), e.EndPoint?.ToString(), e.ConnectionType.ToString(), e.FailureType.ToString());

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e)
        => RedisStoreLog.ConnectionRestored(_logger, e.EndPoint?.ToString(), e.ConnectionType.ToString());

    /// <summary>Field names of an audit stream entry.</summary>
    private static class AuditFields
    {
        public const string Tenant = "T";
        public const string Operation = "O";
        public const string Key = "K";
        public const string StoredFingerprint = "s";
        public const string AttemptedFingerprint = "a";
        public const string Payload = "p";
        public const string OccurredAt = "w";
    }
}
