using System.Data;
using System.Data.Common;
using System.Diagnostics;
using Npgsql;
using NpgsqlTypes;

namespace Oncely.PostgreSql;

/// <summary>
/// Idempotency records in PostgreSQL, shared by every instance of an app. Each transition is one SQL statement (one
/// round trip); leases and expiry are decided by the server's clock (<c>clock_timestamp()</c>), never the app's; fencing
/// tokens come from a sequence, so they are unique over a record's whole life, across expiry and re-creation.
/// </summary>
/// <remarks>
/// Key length: the UNIQUE index on <c>(tenant, operation, idem_key)</c> is a btree, whose entries PostgreSQL caps at
/// about 2704 bytes (a third of an 8 KiB page). The store therefore accepts keys of at most
/// <see cref="MaxKeyLengthLimit"/> characters (<see cref="IIdempotencyStoreLimits"/>), which leaves more than 1600 bytes
/// for the tenant and the operation (a route pattern) together. An id that still does not fit (say, a huge tenant id)
/// fails with an <see cref="ArgumentException"/> that says so, not as an outage.
/// </remarks>
internal sealed partial class PostgreSqlIdempotencyStore
    : IIdempotencyStore, IIdempotencyStoreSweeper, IIdempotencyAuditStore, IIdempotencyStoreInitializer, ITransactionalIdempotencyStore, IIdempotencyStoreLimits,
      IAsyncDisposable, IDisposable
{
    private const int InProgressState = (int)IdempotencyRecordState.InProgress;
    private const int CompletedState = (int)IdempotencyRecordState.Completed;

    // A reservation normally takes one statement. It is repeated only when its snapshot could not show the row it
    // conflicted with (see ReserveSql); the next statement's fresh snapshot does, so a second attempt settles it.
    private const int MaxReserveAttempts = 4;

    /// <summary>The longest key the store accepts, in characters: see the remarks on the class.</summary>
    internal const int MaxKeyLengthLimit = 1024;

    /// <summary>PostgreSQL's limit on one btree index entry, in bytes (for the default 8 KiB page).</summary>
    private const int BtreeEntryLimitBytes = 2704;

    private readonly NpgsqlDataSource _dataSource;
    private readonly bool _ownsDataSource;
    private readonly TimeSpan _timeout;
    private readonly int _commandTimeoutSeconds;
    private readonly string? _storeDatabase;
    private readonly SemaphoreSlim _initGate = new(1, 1);
    private volatile bool _initialized;

    private readonly string _reserveSql;
    private readonly string _completeSql;
    private readonly string _releaseSql;
    private readonly string _recoveryPointSql;
    private readonly string _getSql;
    private readonly string _renewLeaseSql;
    private readonly string _purgeSql;
    private readonly string _auditSql;
    private readonly string _purgeAuditSql;

    /// <summary>Creates the store.</summary>
    /// <param name="dataSource">Where to connect.</param>
    /// <param name="ownsDataSource"><see langword="true"/> when the store built <paramref name="dataSource"/> and disposes it.</param>
    /// <param name="options">Validated options (schema, table, timeout).</param>
    public PostgreSqlIdempotencyStore(NpgsqlDataSource dataSource, bool ownsDataSource, PostgreSqlIdempotencyStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _dataSource = dataSource;
        _ownsDataSource = ownsDataSource;
        _storeDatabase = DatabaseOf(dataSource);
        _timeout = options.CommandTimeout;
        _commandTimeoutSeconds = (int)Math.Ceiling(options.CommandTimeout.TotalSeconds);
        Schema = new PostgreSqlSchema(options.Schema, options.TableName);

        var t = Schema.Table;

        // The reservation, in one statement (one round trip on every path), which writes only when it must:
        //  * clock: the server's time, read once, so every comparison and every new deadline agree.
        //  * cur: the key's row as the statement's snapshot shows it, read like any SELECT: no row lock, no
        //    transaction id. A replay (Completed), a duplicate (InProgress with a valid lease) and a reused key (other
        //    fingerprint) are answered from this read alone (decision-table row 20): ins and upd below then find
        //    nothing to do and write nothing; nextval is not even evaluated, so the sequence does not move either.
        //  * ins: only when cur saw no row: insert the new record. ON CONFLICT DO NOTHING covers a racer whose row
        //    committed after our snapshot (it neither locks that row nor takes an xid; the statement then answers no
        //    row and is run again with a fresh snapshot).
        //  * upd: the conditional write of the two transitions that replace an existing row: past its expiry (it
        //    counts as absent: replaced whole) or InProgress with the same fingerprint and a lapsed lease (a take-over:
        //    new fencing token and lease, expiry and recovery point kept). Its WHERE is the guard: a row that fails it on
        //    the snapshot is skipped without a lock; a row that passes it is locked and, in READ COMMITTED, the guard is
        //    re-checked against the latest committed version before the write (EvalPlanQual), so of any number of
        //    concurrent callers exactly one takes the row over.
        //  * the final SELECT returns the caller's row from ins or upd, or else the row cur read. Its body is
        //    returned only for a Completed record with the caller's fingerprint.
        // The snapshot may be older than a row another transaction committed while this statement waited on ON
        // CONFLICT or on upd's row lock: then the statement returns nothing, or cur shows a row that upd would have
        // overwritten; Classify detects both and the statement is simply run again (a new snapshot). Rows it shows are
        // real committed states.
        _reserveSql = $"""
            WITH clock AS MATERIALIZED (
                SELECT clock_timestamp() AS ts
            ),
            cur AS MATERIALIZED (
                SELECT x.fingerprint, x.state, x.fencing_token, x.lease_expires_at, x.expires_at, x.recovery_point,
                       x.status_code, x.headers, x.body, x.body_omitted
                FROM {t} x
                WHERE x.tenant = @tenant AND x.operation = @operation AND x.idem_key = @key
            ),
            ins AS (
                INSERT INTO {t}
                    (tenant, operation, idem_key, fingerprint, state, fencing_token, lease_expires_at, expires_at,
                     recovery_point, status_code, headers, body, body_omitted, created_at, updated_at)
                SELECT @tenant, @operation, @key, @fingerprint, {InProgressState}, nextval('{Schema.Sequence}'),
                       c.ts + @lease, c.ts + @expiration, NULL, NULL, NULL, NULL, false, c.ts, c.ts
                FROM clock c
                WHERE NOT EXISTS (SELECT 1 FROM cur)
                ON CONFLICT (tenant, operation, idem_key) DO NOTHING
                RETURNING fingerprint, state, fencing_token, lease_expires_at, expires_at, recovery_point, true AS fresh
            ),
            upd AS (
                UPDATE {t} AS r SET
                    fencing_token    = nextval('{Schema.Sequence}'),
                    lease_expires_at = c.ts + @lease,
                    updated_at       = c.ts,
                    state            = {InProgressState},
                    fingerprint      = @fingerprint,
                    expires_at       = CASE WHEN r.expires_at <= c.ts THEN c.ts + @expiration ELSE r.expires_at END,
                    recovery_point   = CASE WHEN r.expires_at <= c.ts THEN NULL ELSE r.recovery_point END,
                    created_at       = CASE WHEN r.expires_at <= c.ts THEN c.ts ELSE r.created_at END,
                    status_code      = NULL,
                    headers          = NULL,
                    body             = NULL,
                    body_omitted     = false
                FROM clock c
                WHERE r.tenant = @tenant AND r.operation = @operation AND r.idem_key = @key
                  AND (r.expires_at <= c.ts
                       OR (r.state = {InProgressState} AND r.fingerprint = @fingerprint AND r.lease_expires_at <= c.ts))
                RETURNING r.fingerprint, r.state, r.fencing_token, r.lease_expires_at, r.expires_at, r.recovery_point,
                          r.created_at = r.updated_at AS fresh
            ),
            mine AS (
                SELECT * FROM ins UNION ALL SELECT * FROM upd
            )
            SELECT true AS mine, m.fingerprint, m.state, m.fencing_token, m.lease_expires_at, m.expires_at, m.recovery_point,
                   NULL::integer AS status_code, NULL::text AS headers, NULL::bytea AS body, false AS body_omitted,
                   c.ts, m.fresh
            FROM mine m CROSS JOIN clock c
            UNION ALL
            SELECT false, x.fingerprint, x.state, x.fencing_token, x.lease_expires_at, x.expires_at, x.recovery_point,
                   x.status_code,
                   CASE WHEN x.state = {CompletedState} AND x.fingerprint = @fingerprint THEN x.headers::text END,
                   CASE WHEN x.state = {CompletedState} AND x.fingerprint = @fingerprint THEN x.body END,
                   x.body_omitted, c.ts, false
            FROM cur x CROSS JOIN clock c
            WHERE NOT EXISTS (SELECT 1 FROM mine)
            """;

        _completeSql = $"""
            UPDATE {t}
            SET state = {CompletedState}, status_code = @status, headers = @headers, body = @body, body_omitted = @omitted,
                expires_at = clock_timestamp() + @expiration, updated_at = clock_timestamp()
            WHERE tenant = @tenant AND operation = @operation AND idem_key = @key
              AND fencing_token = @token AND state = {InProgressState}
            """;

        // Deletes the record, or, when it carries a recovery point, keeps it and ends its lease now. Both branches
        // read the same snapshot and are exclusive (recovery_point IS NULL / IS NOT NULL).
        _releaseSql = $"""
            WITH deleted AS (
                DELETE FROM {t}
                WHERE tenant = @tenant AND operation = @operation AND idem_key = @key
                  AND fencing_token = @token AND state = {InProgressState} AND recovery_point IS NULL
                RETURNING 1
            ),
            ended AS (
                UPDATE {t} SET lease_expires_at = clock_timestamp(), updated_at = clock_timestamp()
                WHERE tenant = @tenant AND operation = @operation AND idem_key = @key
                  AND fencing_token = @token AND state = {InProgressState} AND recovery_point IS NOT NULL
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM deleted) + (SELECT count(*) FROM ended)
            """;

        _recoveryPointSql = $"""
            UPDATE {t}
            SET recovery_point = @recovery, lease_expires_at = clock_timestamp() + @lease, updated_at = clock_timestamp()
            WHERE tenant = @tenant AND operation = @operation AND idem_key = @key
              AND fencing_token = @token AND state = {InProgressState} AND expires_at > clock_timestamp()
            """;

        _renewLeaseSql = $"""
            UPDATE {t}
            SET lease_expires_at = clock_timestamp() + @lease, updated_at = clock_timestamp()
            WHERE tenant = @tenant AND operation = @operation AND idem_key = @key
              AND fencing_token = @token AND state = {InProgressState} AND expires_at > clock_timestamp()
            """;

        _getSql = $"""
            SELECT fingerprint, state, fencing_token, lease_expires_at, expires_at, recovery_point,
                   status_code, headers::text, body, body_omitted
            FROM {t}
            WHERE tenant = @tenant AND operation = @operation AND idem_key = @key AND expires_at > clock_timestamp()
            """;

        // ctid = ANY(ARRAY(...)) plans as a TID scan; SKIP LOCKED lets several sweepers (one per instance) share the
        // work without waiting on each other or on a reservation that is replacing an expired row right now.
        _purgeSql = $"""
            DELETE FROM {t}
            WHERE ctid = ANY(ARRAY(
                    SELECT ctid FROM {t}
                    WHERE expires_at <= clock_timestamp()
                    LIMIT @limit
                    FOR UPDATE SKIP LOCKED))
              AND expires_at <= clock_timestamp()
            """;

        _auditSql = $"""
            INSERT INTO {Schema.AuditTable}
                (tenant, operation, idem_key, stored_fingerprint, attempted_fingerprint, payload, occurred_at)
            VALUES (@tenant, @operation, @key, @stored, @attempted, @payload, @occurred)
            """;

        // Age is measured by recorded_at (set by the server's clock on insert), batched and SKIP LOCKED like the purge.
        _purgeAuditSql = $"""
            DELETE FROM {Schema.AuditTable}
            WHERE id = ANY(ARRAY(
                    SELECT id FROM {Schema.AuditTable}
                    WHERE recorded_at < clock_timestamp() - @retention
                    ORDER BY recorded_at
                    LIMIT @limit
                    FOR UPDATE SKIP LOCKED))
            """;
    }

    /// <inheritdoc />
    public int MaxKeyLength => MaxKeyLengthLimit;

    /// <summary>The store's object names.</summary>
    internal PostgreSqlSchema Schema { get; }

    /// <summary>The data source the store uses.</summary>
    internal NpgsqlDataSource DataSource => _dataSource;

    /// <inheritdoc />
    public async ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fingerprint);
        using var deadline = StartDeadline(cancellationToken);
        try
        {
            await EnsureInitializedAsync(deadline.Token).ConfigureAwait(false);
            for (var attempt = 1; ; attempt++)
            {
                using var command = CreateCommand(_reserveSql, id);
                command.Parameters.Add(new NpgsqlParameter<string>("fingerprint", NpgsqlDbType.Text) { TypedValue = fingerprint });
                command.Parameters.Add(new NpgsqlParameter<TimeSpan>("lease", NpgsqlDbType.Interval) { TypedValue = lease });
                command.Parameters.Add(new NpgsqlParameter<TimeSpan>("expiration", NpgsqlDbType.Interval) { TypedValue = expiration });
                var reader = await command.ExecuteReaderAsync(CommandBehavior.SingleRow, deadline.Token).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    if (await reader.ReadAsync(deadline.Token).ConfigureAwait(false)
                        && Classify(reader, id, fingerprint) is { } result)
                    {
                        return result;
                    }
                }

                if (attempt == MaxReserveAttempts)
                {
                    throw new IdempotencyStoreUnavailableException(
                        $"The PostgreSQL idempotency store could not settle the reservation of {id} after {MaxReserveAttempts} attempts: the record kept changing under heavy contention.");
                }
            }
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.ProgramLimitExceeded)
        {
            throw IdTooLarge(id, ex);
        }
        catch (Exception ex) when (PostgreSqlFailures.IsUnavailable(ex, cancellationToken))
        {
            throw Unavailable("reserve a record", ex);
        }
    }

    /// <inheritdoc />
    public async ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(response);
        using var deadline = StartDeadline(cancellationToken);
        try
        {
            await EnsureInitializedAsync(deadline.Token).ConfigureAwait(false);
            using var command = CreateCommand(_completeSql, id);
            BindCompletion(command, fencingToken, response, expiration);
            return await command.ExecuteNonQueryAsync(deadline.Token).ConfigureAwait(false) == 1;
        }
        catch (Exception ex) when (PostgreSqlFailures.IsUnavailable(ex, cancellationToken))
        {
            throw Unavailable("complete a record", ex);
        }
    }

    /// <inheritdoc />
    public async ValueTask<bool> TryReleaseAsync(IdempotencyRecordId id, long fencingToken, CancellationToken cancellationToken)
    {
        using var deadline = StartDeadline(cancellationToken);
        try
        {
            await EnsureInitializedAsync(deadline.Token).ConfigureAwait(false);
            using var command = CreateCommand(_releaseSql, id);
            command.Parameters.Add(new NpgsqlParameter<long>("token", NpgsqlDbType.Bigint) { TypedValue = fencingToken });
            var changed = await command.ExecuteScalarAsync(deadline.Token).ConfigureAwait(false);
            return Convert.ToInt64(changed, System.Globalization.CultureInfo.InvariantCulture) > 0;
        }
        catch (Exception ex) when (PostgreSqlFailures.IsUnavailable(ex, cancellationToken))
        {
            throw Unavailable("release a record", ex);
        }
    }

    /// <inheritdoc />
    public async ValueTask<bool> TrySetRecoveryPointAsync(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(recoveryPoint);
        using var deadline = StartDeadline(cancellationToken);
        try
        {
            await EnsureInitializedAsync(deadline.Token).ConfigureAwait(false);
            using var command = CreateCommand(_recoveryPointSql, id);
            BindRecoveryPoint(command, fencingToken, recoveryPoint, lease);
            return await command.ExecuteNonQueryAsync(deadline.Token).ConfigureAwait(false) == 1;
        }
        catch (Exception ex) when (PostgreSqlFailures.IsUnavailable(ex, cancellationToken))
        {
            throw Unavailable("set a recovery point", ex);
        }
    }

    /// <inheritdoc />
    public async ValueTask<bool> TryRenewLeaseAsync(IdempotencyRecordId id, long fencingToken, TimeSpan lease, CancellationToken cancellationToken)
    {
        using var deadline = StartDeadline(cancellationToken);
        try
        {
            await EnsureInitializedAsync(deadline.Token).ConfigureAwait(false);
            using var command = CreateCommand(_renewLeaseSql, id);
            command.Parameters.Add(new NpgsqlParameter<long>("token", NpgsqlDbType.Bigint) { TypedValue = fencingToken });
            command.Parameters.Add(new NpgsqlParameter<TimeSpan>("lease", NpgsqlDbType.Interval) { TypedValue = lease });
            return await command.ExecuteNonQueryAsync(deadline.Token).ConfigureAwait(false) == 1;
        }
        catch (Exception ex) when (PostgreSqlFailures.IsUnavailable(ex, cancellationToken))
        {
            throw Unavailable("renew a lease", ex);
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Runs on <paramref name="transaction"/>'s connection, inside it, with the server's clock. The records table must be
    /// in that connection's database. A stale token changes nothing and returns <see langword="false"/>; the caller rolls
    /// back. Nothing is retried here: any failure has already aborted the caller's transaction.
    /// </remarks>
    public async ValueTask<bool> TryCompleteAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(response);
        using var command = CreateCommand(AsNpgsqlTransaction(transaction), _completeSql, id);
        BindCompletion(command, fencingToken, response, expiration);
        return await ExecuteInTransactionAsync(command, "complete a record", cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>Runs on <paramref name="transaction"/>'s connection, inside it, with the server's clock.</remarks>
    public async ValueTask<bool> TrySetRecoveryPointAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentException.ThrowIfNullOrEmpty(recoveryPoint);
        using var command = CreateCommand(AsNpgsqlTransaction(transaction), _recoveryPointSql, id);
        BindRecoveryPoint(command, fencingToken, recoveryPoint, lease);
        return await ExecuteInTransactionAsync(command, "set a recovery point", cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken)
    {
        using var deadline = StartDeadline(cancellationToken);
        try
        {
            await EnsureInitializedAsync(deadline.Token).ConfigureAwait(false);
            using var command = CreateCommand(_getSql, id);
            var reader = await command.ExecuteReaderAsync(CommandBehavior.SingleRow, deadline.Token).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                if (!await reader.ReadAsync(deadline.Token).ConfigureAwait(false))
                {
                    return null;
                }

                return new IdempotencyRecord
                {
                    Id = id,
                    Fingerprint = reader.GetString(0),
                    State = (IdempotencyRecordState)reader.GetInt16(1),
                    FencingToken = reader.GetInt64(2),
                    LeaseExpiresAt = reader.GetFieldValue<DateTimeOffset>(3),
                    ExpiresAt = reader.GetFieldValue<DateTimeOffset>(4),
                    RecoveryPoint = reader.IsDBNull(5) ? null : reader.GetString(5),
                    Response = reader.GetInt16(1) == CompletedState ? ReadResponse(reader, 6) : null,
                };
            }
        }
        catch (Exception ex) when (PostgreSqlFailures.IsUnavailable(ex, cancellationToken))
        {
            throw Unavailable("read a record", ex);
        }
    }

    /// <inheritdoc />
    public async ValueTask<int> PurgeExpiredAsync(int batchSize, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        using var deadline = StartDeadline(cancellationToken);
        try
        {
            await EnsureInitializedAsync(deadline.Token).ConfigureAwait(false);
            using var command = _dataSource.CreateCommand(_purgeSql);
            command.CommandTimeout = _commandTimeoutSeconds;
            command.Parameters.Add(new NpgsqlParameter<int>("limit", NpgsqlDbType.Integer) { TypedValue = batchSize });
            return await command.ExecuteNonQueryAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (PostgreSqlFailures.IsUnavailable(ex, cancellationToken))
        {
            throw Unavailable("purge expired records", ex);
        }
    }

    /// <inheritdoc />
    public async ValueTask AppendAsync(KeyReuseAuditEntry entry, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        using var deadline = StartDeadline(cancellationToken);
        try
        {
            await EnsureInitializedAsync(deadline.Token).ConfigureAwait(false);
            using var command = CreateCommand(_auditSql, entry.Id);
            command.Parameters.Add(new NpgsqlParameter<string>("stored", NpgsqlDbType.Text) { TypedValue = entry.StoredFingerprint });
            command.Parameters.Add(new NpgsqlParameter<string>("attempted", NpgsqlDbType.Text) { TypedValue = entry.AttemptedFingerprint });
            command.Parameters.Add(new NpgsqlParameter<string>("payload", NpgsqlDbType.Text) { TypedValue = entry.Payload ?? string.Empty });
            command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("occurred", NpgsqlDbType.TimestampTz) { TypedValue = entry.OccurredAt.ToUniversalTime() });
            await command.ExecuteNonQueryAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (PostgreSqlFailures.IsUnavailable(ex, cancellationToken))
        {
            throw Unavailable("append an audit entry", ex);
        }
    }

    /// <inheritdoc />
    /// <remarks>An entry's age is measured from the time the server recorded it (<c>recorded_at</c>, the server's clock).</remarks>
    public async ValueTask<int> PurgeAuditAsync(TimeSpan retention, int batchSize, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(retention, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        using var deadline = StartDeadline(cancellationToken);
        try
        {
            await EnsureInitializedAsync(deadline.Token).ConfigureAwait(false);
            using var command = _dataSource.CreateCommand(_purgeAuditSql);
            command.CommandTimeout = _commandTimeoutSeconds;
            command.Parameters.Add(new NpgsqlParameter<TimeSpan>("retention", NpgsqlDbType.Interval) { TypedValue = retention });
            command.Parameters.Add(new NpgsqlParameter<int>("limit", NpgsqlDbType.Integer) { TypedValue = batchSize });
            return await command.ExecuteNonQueryAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (PostgreSqlFailures.IsUnavailable(ex, cancellationToken))
        {
            throw Unavailable("purge old audit entries", ex);
        }
    }

    /// <inheritdoc />
    public async ValueTask InitializeAsync(CancellationToken cancellationToken)
    {
        if (_initialized)
        {
            return;
        }

        using var deadline = StartDeadline(cancellationToken);
        try
        {
            await _initGate.WaitAsync(deadline.Token).ConfigureAwait(false);
            try
            {
                if (!_initialized)
                {
                    await MigrateAsync(deadline.Token).ConfigureAwait(false);
                    _initialized = true;
                }
            }
            finally
            {
                _initGate.Release();
            }
        }
        catch (Exception ex) when (PostgreSqlFailures.IsUnavailable(ex, cancellationToken))
        {
            throw Unavailable("create or upgrade its schema", ex);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        _initGate.Dispose();
        if (_ownsDataSource)
        {
            await _dataSource.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _initGate.Dispose();
        if (_ownsDataSource)
        {
            _dataSource.Dispose();
        }
    }

    private static ReservationResult? Classify(NpgsqlDataReader reader, IdempotencyRecordId id, string fingerprint)
    {
        var mine = reader.GetBoolean(0);
        var storedFingerprint = reader.GetString(1);
        var state = reader.GetInt16(2);
        var leaseExpiresAt = reader.GetFieldValue<DateTimeOffset>(4);
        var expiresAt = reader.GetFieldValue<DateTimeOffset>(5);
        var now = reader.GetFieldValue<DateTimeOffset>(11);
        var record = new IdempotencyRecord
        {
            Id = id,
            Fingerprint = storedFingerprint,
            State = (IdempotencyRecordState)state,
            FencingToken = reader.GetInt64(3),
            LeaseExpiresAt = leaseExpiresAt,
            ExpiresAt = expiresAt,
            RecoveryPoint = reader.IsDBNull(6) ? null : reader.GetString(6),
            Response = !mine && state == CompletedState && string.Equals(storedFingerprint, fingerprint, StringComparison.Ordinal)
                ? ReadResponse(reader, 7)
                : null,
        };

        if (mine)
        {
            return new ReservationResult(reader.GetBoolean(12) ? ReservationOutcome.Acquired : ReservationOutcome.TakenOver, record);
        }

        // The row that blocked the insert, as the statement's snapshot saw it. A row that ON CONFLICT would have
        // overwritten (expired, or a same-fingerprint InProgress with a lapsed lease) means the snapshot is older than
        // the version ON CONFLICT judged: answer nothing and let the caller run the statement again.
        if (expiresAt <= now)
        {
            return null;
        }

        if (!string.Equals(storedFingerprint, fingerprint, StringComparison.Ordinal))
        {
            return new ReservationResult(ReservationOutcome.FingerprintMismatch, record);
        }

        if (state == CompletedState)
        {
            return new ReservationResult(ReservationOutcome.Completed, record);
        }

        return leaseExpiresAt > now ? new ReservationResult(ReservationOutcome.InProgress, record) : null;
    }

    private static IdempotentResponse ReadResponse(NpgsqlDataReader reader, int first)
    {
        var status = reader.IsDBNull(first) ? 0 : reader.GetInt32(first);
        var headers = StoredHeaders.Deserialize(reader.IsDBNull(first + 1) ? null : reader.GetString(first + 1));
        var body = reader.IsDBNull(first + 2) ? [] : reader.GetFieldValue<byte[]>(first + 2);
        var omitted = reader.GetBoolean(first + 3);
        return new IdempotentResponse(status, headers, body, omitted);
    }

    /// <summary>
    /// Wraps a failure as <see cref="IdempotencyStoreUnavailableException"/>. After a connection-level failure the pool's
    /// idle connections are dropped too: after a server restart or failover they are all dead, and without this each
    /// would fail one more call before the pool noticed.
    /// </summary>
    private IdempotencyStoreUnavailableException Unavailable(string operation, Exception exception)
    {
        if (exception is (NpgsqlException and not PostgresException) or System.Net.Sockets.SocketException or IOException)
        {
            _dataSource.Clear();
        }

        return PostgreSqlFailures.Unavailable(operation, exception);
    }

    /// <summary>
    /// The reservation's index entry did not fit (PostgreSQL's btree limit). That is a property of this id, not an
    /// outage: retrying will never succeed, so the caller gets an exception that says what is too long.
    /// </summary>
    private static ArgumentException IdTooLarge(IdempotencyRecordId id, PostgresException exception)
        => new(
            $"The idempotency record id is too large for the PostgreSQL store's unique index: tenant {System.Text.Encoding.UTF8.GetByteCount(id.Tenant)} bytes, " +
            $"operation {System.Text.Encoding.UTF8.GetByteCount(id.Operation)} bytes and key {System.Text.Encoding.UTF8.GetByteCount(id.Key)} bytes together exceed the " +
            $"about {BtreeEntryLimitBytes} bytes PostgreSQL can index. Keep MaxKeyLength at most {MaxKeyLengthLimit} and tenant ids and operation names short " +
            $"(for example, resolve the tenant to an id rather than a long claim). PostgreSQL said: {exception.MessageText}",
            nameof(id),
            exception);

    private static string? DatabaseOf(NpgsqlDataSource dataSource)
    {
        try
        {
            return new NpgsqlConnectionStringBuilder(dataSource.ConnectionString).Database;
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    private static NpgsqlTransaction AsNpgsqlTransaction(DbTransaction transaction)
        => transaction as NpgsqlTransaction
            ?? throw new InvalidOperationException(
                $"The PostgreSQL idempotency store received a {transaction.GetType().FullName}, but it can only write inside an Npgsql.NpgsqlTransaction " +
                "on the store's database. Begin the transaction on an NpgsqlConnection to the database UsePostgreSql points at (or use the store of the database the transaction is on).");

    private NpgsqlCommand CreateCommand(NpgsqlTransaction transaction, string sql, IdempotencyRecordId id)
    {
        var connection = transaction.Connection
            ?? throw new InvalidOperationException("The NpgsqlTransaction has already been committed or rolled back; complete the idempotency record before committing.");
        var command = new NpgsqlCommand(sql, connection, transaction) { CommandTimeout = _commandTimeoutSeconds };
        command.Parameters.Add(new NpgsqlParameter<string>("tenant", NpgsqlDbType.Text) { TypedValue = id.Tenant });
        command.Parameters.Add(new NpgsqlParameter<string>("operation", NpgsqlDbType.Text) { TypedValue = id.Operation });
        command.Parameters.Add(new NpgsqlParameter<string>("key", NpgsqlDbType.Text) { TypedValue = id.Key });
        return command;
    }

    private async ValueTask<bool> ExecuteInTransactionAsync(NpgsqlCommand command, string operation, CancellationToken cancellationToken)
    {
        try
        {
            if (await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1)
            {
                return true;
            }

            // No row: normally a stale token. A transaction on another database that happens to have the table too is
            // a configuration mistake, reported as such rather than as a lost lease.
            var storeDatabase = _storeDatabase;
            var transactionDatabase = command.Connection?.Database;
            if (storeDatabase is not null && transactionDatabase is not null && !string.Equals(storeDatabase, transactionDatabase, StringComparison.Ordinal))
            {
                throw new InvalidOperationException(
                    $"The transaction is on the database '{transactionDatabase}', but the idempotency records are in '{storeDatabase}'. " +
                    "Transactional completion writes the record in the application's own transaction, so the records table must be in the same database: " +
                    "point UsePostgreSql at the application's database (same data source or connection string).");
            }

            return false;
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.UndefinedTable or PostgresErrorCodes.InvalidSchemaName)
        {
            throw new InvalidOperationException(
                $"The database '{command.Connection?.Database}' that the transaction is on has no idempotency records table {Schema.Table}. " +
                "Transactional completion writes the record in the application's own transaction, so the records table must be in the same database: " +
                "point UsePostgreSql at the application's database (same data source or connection string), with the same Schema and TableName.",
                e);
        }
        catch (Exception e) when (PostgreSqlFailures.IsUnavailable(e, cancellationToken))
        {
            throw PostgreSqlFailures.Unavailable($"{operation} inside the application's transaction", e);
        }
    }

    private NpgsqlCommand CreateCommand(string sql, IdempotencyRecordId id)
    {
        var command = _dataSource.CreateCommand(sql);
        command.CommandTimeout = _commandTimeoutSeconds;
        command.Parameters.Add(new NpgsqlParameter<string>("tenant", NpgsqlDbType.Text) { TypedValue = id.Tenant });
        command.Parameters.Add(new NpgsqlParameter<string>("operation", NpgsqlDbType.Text) { TypedValue = id.Operation });
        command.Parameters.Add(new NpgsqlParameter<string>("key", NpgsqlDbType.Text) { TypedValue = id.Key });
        return command;
    }

    /// <summary>A token that fires when the caller cancels or the store's deadline (<see cref="PostgreSqlIdempotencyStoreOptions.CommandTimeout"/>) passes.</summary>
    private CancellationTokenSource StartDeadline(CancellationToken cancellationToken)
    {
        var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_timeout);
        return deadline;
    }

    private ValueTask EnsureInitializedAsync(CancellationToken cancellationToken)
        => _initialized ? ValueTask.CompletedTask : InitializeAsync(cancellationToken);

    private async Task MigrateAsync(CancellationToken cancellationToken)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            // Fast path: an up-to-date schema needs no lock and no DDL (and no CREATE privilege).
            if (await ReadVersionAsync(connection, null, cancellationToken).ConfigureAwait(false) >= Schema.LatestVersion)
            {
                return;
            }

            var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                // Several instances starting together queue here; each re-reads the version after the lock, so the
                // first applies the migrations and the rest find nothing left to do.
                await ExecuteAsync(connection, transaction, "SELECT pg_advisory_xact_lock(@lock)", cancellationToken,
                    new NpgsqlParameter<long>("lock", NpgsqlDbType.Bigint) { TypedValue = Schema.MigrationLockKey }).ConfigureAwait(false);

                var schemaExists = await ScalarAsync<bool>(connection, transaction,
                    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = @schema)", cancellationToken,
                    new NpgsqlParameter<string>("schema", NpgsqlDbType.Text) { TypedValue = Schema.SchemaName }).ConfigureAwait(false);
                if (!schemaExists)
                {
                    await ExecuteAsync(connection, transaction, $"CREATE SCHEMA IF NOT EXISTS {Schema.Schema}", cancellationToken).ConfigureAwait(false);
                }

                await ExecuteAsync(connection, transaction, $"""
                    CREATE TABLE IF NOT EXISTS {Schema.VersionTable} (
                        version     integer     PRIMARY KEY,
                        description text        NOT NULL,
                        applied_at  timestamptz NOT NULL DEFAULT now()
                    )
                    """, cancellationToken).ConfigureAwait(false);

                var current = await ReadVersionAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
                foreach (var migration in Schema.Migrations)
                {
                    if (migration.Version <= current)
                    {
                        continue;
                    }

                    await ExecuteAsync(connection, transaction, migration.Sql, cancellationToken).ConfigureAwait(false);
                    await ExecuteAsync(connection, transaction, $"INSERT INTO {Schema.VersionTable} (version, description) VALUES (@version, @description)", cancellationToken,
                        new NpgsqlParameter<int>("version", NpgsqlDbType.Integer) { TypedValue = migration.Version },
                        new NpgsqlParameter<string>("description", NpgsqlDbType.Text) { TypedValue = migration.Description }).ConfigureAwait(false);
                }

                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async Task<int> ReadVersionAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        var exists = await ScalarAsync<bool>(connection, transaction, "SELECT to_regclass(@name) IS NOT NULL", cancellationToken,
            new NpgsqlParameter<string>("name", NpgsqlDbType.Text) { TypedValue = Schema.VersionTable }).ConfigureAwait(false);
        if (!exists)
        {
            return 0;
        }

        return await ScalarAsync<int>(connection, transaction, $"SELECT coalesce(max(version), 0) FROM {Schema.VersionTable}", cancellationToken).ConfigureAwait(false);
    }

    private async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellationToken, params NpgsqlParameter[] parameters)
    {
        using var command = new NpgsqlCommand(sql, connection, transaction) { CommandTimeout = _commandTimeoutSeconds };
        command.Parameters.AddRange(parameters);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<T> ScalarAsync<T>(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellationToken, params NpgsqlParameter[] parameters)
    {
        using var command = new NpgsqlCommand(sql, connection, transaction) { CommandTimeout = _commandTimeoutSeconds };
        command.Parameters.AddRange(parameters);
        var value = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        Debug.Assert(value is T, "The scalar query returns the expected type.");
        return (T)value!;
    }

    // One binding per statement, shared by the standalone and the in-transaction paths so they cannot drift apart.
    private static void BindCompletion(NpgsqlCommand command, long fencingToken, IdempotentResponse response, TimeSpan expiration)
    {
        command.Parameters.Add(new NpgsqlParameter<long>("token", NpgsqlDbType.Bigint) { TypedValue = fencingToken });
        command.Parameters.Add(new NpgsqlParameter<int>("status", NpgsqlDbType.Integer) { TypedValue = response.StatusCode });
        command.Parameters.Add(new NpgsqlParameter<string>("headers", NpgsqlDbType.Jsonb) { TypedValue = StoredHeaders.Serialize(response.Headers) });
        command.Parameters.Add(new NpgsqlParameter<ReadOnlyMemory<byte>>("body", NpgsqlDbType.Bytea) { TypedValue = response.Body });
        command.Parameters.Add(new NpgsqlParameter<bool>("omitted", NpgsqlDbType.Boolean) { TypedValue = response.BodyOmitted });
        command.Parameters.Add(new NpgsqlParameter<TimeSpan>("expiration", NpgsqlDbType.Interval) { TypedValue = expiration });
    }

    private static void BindRecoveryPoint(NpgsqlCommand command, long fencingToken, string recoveryPoint, TimeSpan lease)
    {
        command.Parameters.Add(new NpgsqlParameter<long>("token", NpgsqlDbType.Bigint) { TypedValue = fencingToken });
        command.Parameters.Add(new NpgsqlParameter<string>("recovery", NpgsqlDbType.Text) { TypedValue = recoveryPoint });
        command.Parameters.Add(new NpgsqlParameter<TimeSpan>("lease", NpgsqlDbType.Interval) { TypedValue = lease });
    }
}
