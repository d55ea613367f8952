using System.Data;
using System.Runtime.CompilerServices;
using Npgsql;
using NpgsqlTypes;

namespace Oncely.PostgreSql;

/// <summary>
/// Every statement the PostgreSQL store runs on the records and audit tables, each kept with what belongs to it: its
/// text, the parameters it binds and, for those that answer rows, how its reply is read (column positions included). To
/// change a statement, change it here only; the store decides which to run and when.
/// </summary>
/// <remarks>
/// Every statement is one round trip and uses the server's clock (<c>clock_timestamp()</c>). A statement is created on
/// the store's data source, or on the application's transaction when one is given (the same text and parameters: the
/// autocommit and the in-transaction paths cannot drift apart). Every fenced write names the key and the caller's
/// fencing token and requires the record to be InProgress.
/// </remarks>
internal sealed class PostgreSqlStatements
{
    private const int InProgressState = (int)IdempotencyRecordState.InProgress;
    private const int CompletedState = (int)IdempotencyRecordState.Completed;

    // One-commit reservation, one round trip of three statements: keep the transaction's lock_timeout and bound the
    // reservation's wait (one statement: the subquery, whose volatile target list keeps it from being pulled up, yields
    // its row, having saved the old value, before the outer target list sets the new one), reserve, put lock_timeout
    // back. The statements of a batch run in order; set_config(..., true) lasts until the transaction ends at most.
    private const string SaveAndSetLockTimeoutSql =
        "SELECT set_config('lock_timeout', $1, true) FROM (SELECT set_config('oncely.lock_timeout_before', current_setting('lock_timeout'), true)) AS saved";
    private const string RestoreLockTimeoutSql = "SELECT set_config('lock_timeout', current_setting('oncely.lock_timeout_before'), true)";

    private readonly NpgsqlDataSource _dataSource;
    private readonly int _commandTimeoutSeconds;
    private readonly bool _prepare;
    private readonly string _reserve;
    private readonly string _reserveFresh;
    private readonly string _reserveFreshCall;
    private readonly string _complete;
    private readonly string _completeOrFail;
    private readonly string _release;
    private readonly string _setRecoveryPoint;
    private readonly string _renewLease;
    private readonly string _get;
    private readonly string _purgeExpired;
    private readonly string _appendAudit;
    private readonly string _purgeAudit;

    /// <summary>Builds the statements for <paramref name="schema"/>'s (quoted) object names.</summary>
    /// <param name="schema">The store's object names.</param>
    /// <param name="dataSource">Where statements outside the application's transaction run.</param>
    /// <param name="commandTimeoutSeconds">Every command's timeout, in whole seconds.</param>
    /// <param name="prepare">Whether the statements of a request's path are prepared on each physical connection (<see cref="PostgreSqlIdempotencyStoreOptions.PrepareStatements"/>).</param>
    public PostgreSqlStatements(PostgreSqlSchema schema, NpgsqlDataSource dataSource, int commandTimeoutSeconds, bool prepare = true)
    {
        _dataSource = dataSource;
        _commandTimeoutSeconds = commandTimeoutSeconds;
        _prepare = prepare;
        ChangedOne = ChangedOneAsync;
        ChangedAny = ChangedAnyAsync;
        Execute = ExecuteAsync;
        var t = schema.Table;

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
        _reserve = $"""
            WITH clock AS MATERIALIZED (
                SELECT clock_timestamp() AS ts
            ),
            cur AS MATERIALIZED (
                SELECT x.fingerprint, x.state, x.fencing_token, x.lease_expires_at, x.expires_at, x.recovery_point,
                       x.status_code, x.headers, x.body, x.body_omitted, x.attempts
                FROM {t} x
                WHERE x.tenant = @tenant AND x.operation = @operation AND x.idem_key = @key
            ),
            ins AS (
                INSERT INTO {t}
                    (tenant, operation, idem_key, fingerprint, state, fencing_token, lease_expires_at, expires_at,
                     recovery_point, status_code, headers, body, body_omitted, created_at, updated_at, attempts)
                SELECT @tenant, @operation, @key, @fingerprint, {InProgressState}, nextval('{schema.Sequence}'),
                       c.ts + @lease, c.ts + @expiration, NULL, NULL, NULL, NULL, false, c.ts, c.ts, 1
                FROM clock c
                WHERE NOT EXISTS (SELECT 1 FROM cur)
                ON CONFLICT (tenant, operation, idem_key) DO NOTHING
                RETURNING fingerprint, state, fencing_token, lease_expires_at, expires_at, recovery_point, true AS fresh, attempts
            ),
            upd AS (
                UPDATE {t} AS r SET
                    fencing_token    = nextval('{schema.Sequence}'),
                    lease_expires_at = c.ts + @lease,
                    updated_at       = c.ts,
                    state            = {InProgressState},
                    fingerprint      = @fingerprint,
                    expires_at       = CASE WHEN r.expires_at <= c.ts THEN c.ts + @expiration ELSE r.expires_at END,
                    recovery_point   = CASE WHEN r.expires_at <= c.ts THEN NULL ELSE r.recovery_point END,
                    created_at       = CASE WHEN r.expires_at <= c.ts THEN c.ts ELSE r.created_at END,
                    attempts         = CASE WHEN r.expires_at <= c.ts THEN 1 ELSE r.attempts + 1 END,
                    status_code      = NULL,
                    headers          = NULL,
                    body             = NULL,
                    body_omitted     = false
                FROM clock c
                WHERE r.tenant = @tenant AND r.operation = @operation AND r.idem_key = @key
                  AND (r.expires_at <= c.ts
                       OR (r.state = {InProgressState} AND r.fingerprint = @fingerprint AND r.lease_expires_at <= c.ts))
                RETURNING r.fingerprint, r.state, r.fencing_token, r.lease_expires_at, r.expires_at, r.recovery_point,
                          r.created_at = r.updated_at AS fresh, r.attempts
            ),
            mine AS (
                SELECT * FROM ins UNION ALL SELECT * FROM upd
            )
            SELECT true AS mine, m.fingerprint, m.state, m.fencing_token, m.lease_expires_at, m.expires_at, m.recovery_point,
                   NULL::integer AS status_code, NULL::text AS headers, NULL::bytea AS body, false AS body_omitted,
                   c.ts, m.fresh, m.attempts
            FROM mine m CROSS JOIN clock c
            UNION ALL
            SELECT false, x.fingerprint, x.state, x.fencing_token, x.lease_expires_at, x.expires_at, x.recovery_point,
                   x.status_code,
                   CASE WHEN x.state = {CompletedState} AND x.fingerprint = @fingerprint THEN x.headers::text END,
                   CASE WHEN x.state = {CompletedState} AND x.fingerprint = @fingerprint THEN x.body END,
                   x.body_omitted, c.ts, false, x.attempts
            FROM cur x CROSS JOIN clock c
            WHERE NOT EXISTS (SELECT 1 FROM mine)
            """;

        // The one-commit reservation's first try, for the case it nearly always meets: no record holds the key (the
        // engine's read before the transaction found none). A plain insert, without the full reservation's reads and
        // its conditional update: with the completion after it, PostgreSQL runs it at 1.4–1.6× the full statement's
        // rate (docs/benchmarks.md).
        // It answers in the full reservation's shape: one row (mine, fresh) when it inserted, and no row when any row
        // holds the key, committed or not (ON CONFLICT DO NOTHING waits for an uncommitted one, bounded by the batch's
        // lock_timeout, then takes no lock and writes nothing). No row sends the caller to the full reservation, which
        // tells a replay, a reused key, a live duplicate, an expired record and a lapsed lease apart. nextval is
        // evaluated before the conflict is known, so a conflict uses up one fencing token: tokens stay increasing,
        // only not dense.
        _reserveFresh = $"""
            INSERT INTO {t}
                (tenant, operation, idem_key, fingerprint, state, fencing_token, lease_expires_at, expires_at,
                 recovery_point, status_code, headers, body, body_omitted, created_at, updated_at, attempts)
            SELECT @tenant, @operation, @key, @fingerprint, {InProgressState}, nextval('{schema.Sequence}'),
                   c.ts + @lease, c.ts + @expiration, NULL, NULL, NULL, NULL, false, c.ts, c.ts, 1
            FROM (SELECT clock_timestamp() AS ts) c
            ON CONFLICT (tenant, operation, idem_key) DO NOTHING
            RETURNING true AS mine, fingerprint, state, fencing_token, lease_expires_at, expires_at, recovery_point,
                      NULL::integer AS status_code, NULL::text AS headers, NULL::bytea AS body, false AS body_omitted,
                      created_at AS ts, true AS fresh, attempts
            """;

        _complete = $"""
            UPDATE {t}
            SET state = {CompletedState}, status_code = @status, headers = @headers, body = @body, body_omitted = @omitted,
                expires_at = clock_timestamp() + @expiration, updated_at = clock_timestamp()
            WHERE tenant = @tenant AND operation = @operation AND idem_key = @key
              AND fencing_token = @token AND state = {InProgressState}
            """;

        // The completion that is sent with COMMIT in one batch (CompleteAndCommit): a completion that changes no row (the
        // lease was lost) must stop the COMMIT, so instead of answering 0 it fails, with a division by zero computed from
        // the rows it changed (a subquery, so the planner cannot fold it ahead of time). The batch stops at the error and
        // the transaction is left aborted: the handler's writes are never committed without their record.
        _completeOrFail = $"""
            WITH changed AS (
            {_complete}
                RETURNING 1
            )
            SELECT 1 / (SELECT count(*)::int FROM changed)
            """;

        // Deletes the record, or, when it carries a recovery point, keeps it and ends its lease now. Both branches
        // read the same snapshot and are exclusive (recovery_point IS NULL / IS NOT NULL).
        _release = $"""
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

        _setRecoveryPoint = $"""
            UPDATE {t}
            SET recovery_point = @recovery, lease_expires_at = clock_timestamp() + @lease, updated_at = clock_timestamp()
            WHERE tenant = @tenant AND operation = @operation AND idem_key = @key
              AND fencing_token = @token AND state = {InProgressState} AND expires_at > clock_timestamp()
            """;

        _renewLease = $"""
            UPDATE {t}
            SET lease_expires_at = clock_timestamp() + @lease, updated_at = clock_timestamp()
            WHERE tenant = @tenant AND operation = @operation AND idem_key = @key
              AND fencing_token = @token AND state = {InProgressState} AND expires_at > clock_timestamp()
            """;

        _get = $"""
            SELECT fingerprint, state, fencing_token, lease_expires_at, expires_at, recovery_point,
                   status_code, headers::text, body, body_omitted, attempts
            FROM {t}
            WHERE tenant = @tenant AND operation = @operation AND idem_key = @key AND expires_at > clock_timestamp()
            """;

        // ctid = ANY(ARRAY(...)) plans as a TID scan; SKIP LOCKED lets several sweepers (one per instance) share the
        // work without waiting on each other or on a reservation that is replacing an expired row right now.
        _purgeExpired = $"""
            DELETE FROM {t}
            WHERE ctid = ANY(ARRAY(
                    SELECT ctid FROM {t}
                    WHERE expires_at <= clock_timestamp()
                    LIMIT @limit
                    FOR UPDATE SKIP LOCKED))
              AND expires_at <= clock_timestamp()
            """;

        _appendAudit = $"""
            INSERT INTO {schema.AuditTable}
                (tenant, operation, idem_key, stored_fingerprint, attempted_fingerprint, payload, occurred_at)
            VALUES (@tenant, @operation, @key, @stored, @attempted, @payload, @occurred)
            """;

        // Age is measured by recorded_at (set by the server's clock on insert), batched and SKIP LOCKED like the purge.
        _purgeAudit = $"""
            DELETE FROM {schema.AuditTable}
            WHERE id = ANY(ARRAY(
                    SELECT id FROM {schema.AuditTable}
                    WHERE recorded_at < clock_timestamp() - @retention
                    ORDER BY recorded_at
                    LIMIT @limit
                    FOR UPDATE SKIP LOCKED))
            """;

        // Every statement is sent with positional parameters ($1, $2, …, in the order the parameters are added below),
        // so Npgsql sends the text as it is: no parse and rewrite of a named-parameter statement on every call (for the
        // reservation's CTE that was the largest allocation of a payment). The texts above keep the names for reading.
        _reserve = Positional(_reserve, "tenant", "operation", "key", "fingerprint", "lease", "expiration");
        _reserveFresh = Positional(_reserveFresh, "tenant", "operation", "key", "fingerprint", "lease", "expiration");

        // The same insert as a function call (schema version 5), for the application's batch: one statement, cheap to
        // parse unprepared, the lock_timeout set and put back inside it.
        _reserveFreshCall = $"SELECT * FROM {schema.ReserveFreshFunction}($1, $2, $3, $4, $5, $6, $7)";
        _complete = Positional(_complete, "tenant", "operation", "key", "token", "status", "headers", "body", "omitted", "expiration");
        _completeOrFail = Positional(_completeOrFail, "tenant", "operation", "key", "token", "status", "headers", "body", "omitted", "expiration");
        _release = Positional(_release, "tenant", "operation", "key", "token");
        _setRecoveryPoint = Positional(_setRecoveryPoint, "tenant", "operation", "key", "token", "recovery", "lease");
        _renewLease = Positional(_renewLease, "tenant", "operation", "key", "token", "lease");
        _get = Positional(_get, "tenant", "operation", "key");
        _purgeExpired = Positional(_purgeExpired, "limit");
        _appendAudit = Positional(_appendAudit, "tenant", "operation", "key", "stored", "attempted", "payload", "occurred");
        _purgeAudit = Positional(_purgeAudit, "retention", "limit");
    }

    /// <summary>Every command's timeout, in whole seconds.</summary>
    public int CommandTimeoutSeconds => _commandTimeoutSeconds;

    /// <summary>
    /// The reservation (insert, replace an expired record, take over a lapsed lease, or read the record that holds the
    /// key); read its reply with <see cref="ReadReservationAsync(NpgsqlCommand, IdempotencyRecordId, string, CancellationToken)"/>.
    /// </summary>
    public NpgsqlCommand Reserve(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration)
        => BindReservation(Create(_reserve, id), fingerprint, lease, expiration);

    /// <summary>
    /// The reservation inside the application's transaction, its wait for another transaction's uncommitted row bounded
    /// by <paramref name="lockTimeout"/> (<c>lock_timeout</c> for this statement only, then put back); read its reply with
    /// <see cref="ReadReservationAsync(NpgsqlBatch, IdempotencyRecordId, string, CancellationToken)"/>. A batch of three
    /// statements, one round trip: keep the transaction's <c>lock_timeout</c> and set the reservation's, reserve, put it back.
    /// </summary>
    /// <param name="transaction">The application's transaction.</param>
    /// <param name="id">The record.</param>
    /// <param name="fingerprint">The request's fingerprint.</param>
    /// <param name="lease">The new lease.</param>
    /// <param name="expiration">The record's retention.</param>
    /// <param name="lockTimeout">The bound on the wait for another transaction's uncommitted row.</param>
    /// <param name="freshOnly">
    /// Send the plain insert (<c>_reserveFresh</c>) instead of the full reservation: it answers a row only when it
    /// inserted one, and no row whenever a row holds the key (then send the full reservation).
    /// </param>
    public NpgsqlBatch Reserve(NpgsqlTransaction transaction, IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, TimeSpan lockTimeout, bool freshOnly = false)
    {
        var connection = transaction.Connection
            ?? throw new InvalidOperationException("The NpgsqlTransaction has already been committed or rolled back; reserve the idempotency record as the transaction's first statement.");

        // The wait for the other transaction is on top of the store's usual bound for one call.
        var batch = new NpgsqlBatch(connection, transaction) { Timeout = ReservationTimeoutSeconds(lockTimeout) };
        var set = new NpgsqlBatchCommand(SaveAndSetLockTimeoutSql);
        set.Parameters.Add(LockTimeoutParameter(lockTimeout));
        var reserve = new NpgsqlBatchCommand(freshOnly ? _reserveFresh : _reserve);
        AddKey(reserve.Parameters, id);
        AddReservation(reserve.Parameters, fingerprint, lease, expiration);
        batch.BatchCommands.Add(set);
        batch.BatchCommands.Add(reserve);
        batch.BatchCommands.Add(new NpgsqlBatchCommand(RestoreLockTimeoutSql));
        return batch;
    }

    /// <summary>
    /// The plain insert of the one-commit reservation as one statement, the call of the schema's function: for the
    /// application's batch (<c>ReserveAndExecuteAsync</c>), where it cannot be prepared. Its answer has the columns of
    /// <see cref="Classify"/>: one row when it inserted, none when a row holds the key.
    /// </summary>
    public NpgsqlBatchCommand ReserveFreshCall(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, TimeSpan lockTimeout)
    {
        var call = new NpgsqlBatchCommand(_reserveFreshCall);
        AddKey(call.Parameters, id);
        AddReservation(call.Parameters, fingerprint, lease, expiration);
        call.Parameters.Add(LockTimeoutParameter(lockTimeout));
        return call;
    }

    // lock_timeout's value, in whole milliseconds (rounded up), as set_config takes it.
    private static NpgsqlParameter<string> LockTimeoutParameter(TimeSpan lockTimeout)
        => new() { NpgsqlDbType = NpgsqlDbType.Text, TypedValue = ((long)Math.Ceiling(lockTimeout.TotalMilliseconds)).ToString(System.Globalization.CultureInfo.InvariantCulture) };

    /// <summary>The timeout, in whole seconds, of a batch that carries the reservation: the store's usual bound plus the lock wait.</summary>
    public int ReservationTimeoutSeconds(TimeSpan lockTimeout) => _commandTimeoutSeconds + (int)Math.Ceiling(lockTimeout.TotalSeconds);

    /// <summary>
    /// The answer of the reservation inside the application's transaction (<see cref="Reserve(NpgsqlTransaction, IdempotencyRecordId, string, TimeSpan, TimeSpan, TimeSpan, bool)"/>),
    /// or <see langword="null"/> when its snapshot could not settle it. Disposes the batch.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<ReservationResult?> ReadReservationAsync(NpgsqlBatch batch, IdempotencyRecordId id, string fingerprint, CancellationToken cancellationToken)
    {
        await using (batch.ConfigureAwait(false))
        {
            if (_prepare)
            {
                await batch.PrepareAsync(cancellationToken).ConfigureAwait(false);
            }

            ReservationResult? result = null;
            var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                // Past the set_config result to the reservation's.
                await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
                if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    result = Classify(reader, id, fingerprint);
                }

                while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false))
                {
                }
            }

            return result;
        }
    }

    /// <summary>
    /// The reservation's answer, or <see langword="null"/> when the statement's snapshot could not settle it (run it
    /// again: the next statement has a fresh snapshot). Disposes the command.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<ReservationResult?> ReadReservationAsync(NpgsqlCommand command, IdempotencyRecordId id, string fingerprint, CancellationToken cancellationToken)
    {
        using (command)
        {
            var owned = await ConnectAsync(command, cancellationToken).ConfigureAwait(false);
            try
            {
                ReservationResult? result = null;
                var reader = await command.ExecuteReaderAsync(CommandBehavior.SingleRow, cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        result = Classify(reader, id, fingerprint);
                    }
                }

                return result;
            }
            finally
            {
                if (owned is not null)
                {
                    await owned.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>Stores the response and marks the record Completed (fenced); changes one row or none.</summary>
    public NpgsqlCommand Complete(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, NpgsqlTransaction? transaction = null)
    {
        var command = Create(_complete, id, transaction);
        AddCompletion(command.Parameters, fencingToken, response, expiration);
        return command;
    }

    /// <summary>
    /// The completion and the transaction's <c>COMMIT</c> as one batch, one round trip. The completion fails (SQLSTATE
    /// 22012) when it changes no row, so the <c>COMMIT</c> never runs without it; see <see cref="IsLeaseLost"/>.
    /// </summary>
    public NpgsqlBatch CompleteAndCommit(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, NpgsqlTransaction transaction)
    {
        var connection = transaction.Connection
            ?? throw new InvalidOperationException("The NpgsqlTransaction has already been committed or rolled back; complete the idempotency record and commit through CompleteAndCommitAsync instead of committing yourself.");
        var batch = new NpgsqlBatch(connection, transaction) { Timeout = _commandTimeoutSeconds };
        var complete = new NpgsqlBatchCommand(_completeOrFail);
        AddKey(complete.Parameters, id);
        AddCompletion(complete.Parameters, fencingToken, response, expiration);
        batch.BatchCommands.Add(complete);
        batch.BatchCommands.Add(new NpgsqlBatchCommand("COMMIT"));
        return batch;
    }

    /// <summary>
    /// Runs <see cref="CompleteAndCommit"/>'s batch (prepared, like every statement, when <c>PrepareStatements</c> is on)
    /// and disposes it: <see langword="true"/> when both ran, <see langword="false"/> when the completion found the
    /// record no longer held by its token (nothing committed).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<bool> CompleteAndCommitAsync(NpgsqlBatch batch, CancellationToken cancellationToken)
    {
        await using (batch.ConfigureAwait(false))
        {
            try
            {
                if (_prepare)
                {
                    await batch.PrepareAsync(cancellationToken).ConfigureAwait(false);
                }

                await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                return true;
            }
            catch (PostgresException e) when (IsLeaseLost(e))
            {
                return false;
            }
        }
    }

    /// <summary>Whether <paramref name="exception"/> is <see cref="CompleteAndCommit"/>'s completion finding no row held by its token.</summary>
    public static bool IsLeaseLost(Exception exception) => exception is PostgresException { SqlState: PostgresErrorCodes.DivisionByZero };

    /// <summary>Deletes the record, or keeps one with a recovery point and ends its lease now (fenced); its scalar is the rows changed.</summary>
    public NpgsqlCommand Release(IdempotencyRecordId id, long fencingToken)
    {
        var command = Create(_release, id);
        command.Parameters.Add(new NpgsqlParameter<long> { NpgsqlDbType = NpgsqlDbType.Bigint, TypedValue = fencingToken });
        return command;
    }

    /// <summary>Records the committed phase and renews the lease on a live record (fenced); changes one row or none.</summary>
    public NpgsqlCommand SetRecoveryPoint(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, NpgsqlTransaction? transaction = null)
    {
        var command = Create(_setRecoveryPoint, id, transaction);
        command.Parameters.Add(new NpgsqlParameter<long> { NpgsqlDbType = NpgsqlDbType.Bigint, TypedValue = fencingToken });
        command.Parameters.Add(new NpgsqlParameter<string> { NpgsqlDbType = NpgsqlDbType.Text, TypedValue = recoveryPoint });
        command.Parameters.Add(new NpgsqlParameter<TimeSpan> { NpgsqlDbType = NpgsqlDbType.Interval, TypedValue = lease });
        return command;
    }

    /// <summary>Extends the lease of a live InProgress record from now (fenced); changes one row or none.</summary>
    public NpgsqlCommand RenewLease(IdempotencyRecordId id, long fencingToken, TimeSpan lease)
    {
        var command = Create(_renewLease, id);
        command.Parameters.Add(new NpgsqlParameter<long> { NpgsqlDbType = NpgsqlDbType.Bigint, TypedValue = fencingToken });
        command.Parameters.Add(new NpgsqlParameter<TimeSpan> { NpgsqlDbType = NpgsqlDbType.Interval, TypedValue = lease });
        return command;
    }

    /// <summary>The key's live record; read its reply with <see cref="ReadRecordAsync"/>.</summary>
    public NpgsqlCommand Get(IdempotencyRecordId id) => Create(_get, id);

    /// <summary>The record <see cref="Get"/> found, or <see langword="null"/>. Disposes the command.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<IdempotencyRecord?> ReadRecordAsync(NpgsqlCommand command, IdempotencyRecordId id, CancellationToken cancellationToken)
    {
        using (command)
        {
            var owned = await ConnectAsync(command, cancellationToken).ConfigureAwait(false);
            try
            {
                var reader = await command.ExecuteReaderAsync(CommandBehavior.SingleRow, cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        return null;
                    }

                    // fingerprint, state, fencing_token, lease_expires_at, expires_at, recovery_point, status_code, headers, body, body_omitted, attempts.
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
                        Attempts = reader.GetInt32(10),
                    };
                }
            }
            finally
            {
                if (owned is not null)
                {
                    await owned.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>Deletes up to <paramref name="batchSize"/> expired records; answers the count.</summary>
    public NpgsqlCommand PurgeExpired(int batchSize)
    {
        var command = Create(_purgeExpired);
        command.Parameters.Add(new NpgsqlParameter<int> { NpgsqlDbType = NpgsqlDbType.Integer, TypedValue = batchSize });
        return command;
    }

    /// <summary>Appends one key-reuse audit entry.</summary>
    public NpgsqlCommand AppendAudit(KeyReuseAuditEntry entry)
    {
        var command = Create(_appendAudit, entry.Id);
        command.Parameters.Add(new NpgsqlParameter<string> { NpgsqlDbType = NpgsqlDbType.Text, TypedValue = entry.StoredFingerprint });
        command.Parameters.Add(new NpgsqlParameter<string> { NpgsqlDbType = NpgsqlDbType.Text, TypedValue = entry.AttemptedFingerprint });
        command.Parameters.Add(new NpgsqlParameter<string> { NpgsqlDbType = NpgsqlDbType.Text, TypedValue = entry.Payload ?? string.Empty });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { NpgsqlDbType = NpgsqlDbType.TimestampTz, TypedValue = entry.OccurredAt.ToUniversalTime() });
        return command;
    }

    /// <summary>Deletes up to <paramref name="batchSize"/> audit entries the server recorded longer than <paramref name="retention"/> ago; answers the count.</summary>
    public NpgsqlCommand PurgeAudit(TimeSpan retention, int batchSize)
    {
        var command = Create(_purgeAudit);
        command.Parameters.Add(new NpgsqlParameter<TimeSpan> { NpgsqlDbType = NpgsqlDbType.Interval, TypedValue = retention });
        command.Parameters.Add(new NpgsqlParameter<int> { NpgsqlDbType = NpgsqlDbType.Integer, TypedValue = batchSize });
        return command;
    }

    /// <summary>A command for <paramref name="sql"/> on the store's data source, or on <paramref name="transaction"/>'s connection, with the store's timeout.</summary>
    public NpgsqlCommand Create(string sql, NpgsqlTransaction? transaction = null)
    {
        if (transaction is null)
        {
            var command = _dataSource.CreateCommand(sql);
            command.CommandTimeout = _commandTimeoutSeconds;
            return command;
        }

        var connection = transaction.Connection
            ?? throw new InvalidOperationException("The NpgsqlTransaction has already been committed or rolled back; complete the idempotency record before committing.");
        return new NpgsqlCommand(sql, connection, transaction) { CommandTimeout = _commandTimeoutSeconds };
    }

    /// <summary>Runs a fenced statement and disposes it; answers whether it changed exactly one row (the caller's record).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<bool> ChangedOneAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        using (command)
        {
            var owned = await ConnectAsync(command, cancellationToken).ConfigureAwait(false);
            try
            {
                return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
            }
            finally
            {
                if (owned is not null)
                {
                    await owned.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>Runs a statement that changes rows and disposes it; answers how many it changed.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<int> ExecuteAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        using (command)
        {
            var owned = await ConnectAsync(command, cancellationToken).ConfigureAwait(false);
            try
            {
                return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                if (owned is not null)
                {
                    await owned.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>Runs a statement whose one value is the count of rows it changed, and disposes it; answers whether that is above zero.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<bool> ChangedAnyAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        using (command)
        {
            var owned = await ConnectAsync(command, cancellationToken).ConfigureAwait(false);
            try
            {
                var changed = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
                return Convert.ToInt64(changed, System.Globalization.CultureInfo.InvariantCulture) > 0;
            }
            finally
            {
                if (owned is not null)
                {
                    await owned.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary><see cref="ChangedOneAsync"/>, as one delegate for the store's shell (no allocation per call).</summary>
    public Func<NpgsqlCommand, CancellationToken, ValueTask<bool>> ChangedOne { get; }

    /// <summary><see cref="ChangedAnyAsync"/>, as one delegate.</summary>
    public Func<NpgsqlCommand, CancellationToken, ValueTask<bool>> ChangedAny { get; }

    /// <summary><see cref="ExecuteAsync"/>, as one delegate.</summary>
    public Func<NpgsqlCommand, CancellationToken, ValueTask<int>> Execute { get; }

    /// <summary>
    /// Readies a command of a record's statement to run: a prepared one outside a transaction gets its connection from
    /// the pool here (returned, the caller disposes it), and with <see cref="PostgreSqlIdempotencyStoreOptions.PrepareStatements"/>
    /// the statement is prepared on that physical connection: the first time a round trip (parse, describe), after
    /// that nothing, for Npgsql keeps it prepared across pooled reuse. Other commands (the data source's) open their
    /// own connection when they run; <see langword="null"/> then.
    /// </summary>
    private async ValueTask<NpgsqlConnection?> ConnectAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        if (!_prepare || command.GetType() != typeof(NpgsqlCommand) || command.Connection is not { } connection)
        {
            return null;
        }

        NpgsqlConnection? owned = null;
        if (connection.State == ConnectionState.Closed)
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            owned = connection;
        }

        try
        {
            await command.PrepareAsync(cancellationToken).ConfigureAwait(false);
            return owned;
        }
        catch
        {
            if (owned is not null)
            {
                await owned.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }
    }

    // A record's statement: on the transaction's connection, or, when prepared, on a connection of the pool that
    // ConnectAsync opens (prepared statements live on a physical connection), else on the data source.
    private NpgsqlCommand Create(string sql, IdempotencyRecordId id, NpgsqlTransaction? transaction = null)
    {
        var command = transaction is null && _prepare
            ? new NpgsqlCommand(sql, _dataSource.CreateConnection()) { CommandTimeout = _commandTimeoutSeconds }
            : Create(sql, transaction);
        AddKey(command.Parameters, id);
        return command;
    }

    // $1, $2, $3 of every record's statement.
    // The completion's parameters after the key, in the order of its positional parameters ($4 to $9).
    private static void AddCompletion(NpgsqlParameterCollection parameters, long fencingToken, IdempotentResponse response, TimeSpan expiration)
    {
        parameters.Add(new NpgsqlParameter<long> { NpgsqlDbType = NpgsqlDbType.Bigint, TypedValue = fencingToken });
        parameters.Add(new NpgsqlParameter<int> { NpgsqlDbType = NpgsqlDbType.Integer, TypedValue = response.StatusCode });
        parameters.Add(new NpgsqlParameter<string> { NpgsqlDbType = NpgsqlDbType.Jsonb, TypedValue = StoredHeaders.Serialize(response.Headers) });
        parameters.Add(new NpgsqlParameter<ReadOnlyMemory<byte>> { NpgsqlDbType = NpgsqlDbType.Bytea, TypedValue = response.Body });
        parameters.Add(new NpgsqlParameter<bool> { NpgsqlDbType = NpgsqlDbType.Boolean, TypedValue = response.BodyOmitted });
        parameters.Add(new NpgsqlParameter<TimeSpan> { NpgsqlDbType = NpgsqlDbType.Interval, TypedValue = expiration });
    }

    private static void AddKey(NpgsqlParameterCollection parameters, IdempotencyRecordId id)
    {
        parameters.Add(new NpgsqlParameter<string> { NpgsqlDbType = NpgsqlDbType.Text, TypedValue = id.Tenant });
        parameters.Add(new NpgsqlParameter<string> { NpgsqlDbType = NpgsqlDbType.Text, TypedValue = id.Operation });
        parameters.Add(new NpgsqlParameter<string> { NpgsqlDbType = NpgsqlDbType.Text, TypedValue = id.Key });
    }

    private static NpgsqlCommand BindReservation(NpgsqlCommand command, string fingerprint, TimeSpan lease, TimeSpan expiration)
    {
        AddReservation(command.Parameters, fingerprint, lease, expiration);
        return command;
    }

    // $4, $5, $6 of the reservation.
    private static void AddReservation(NpgsqlParameterCollection parameters, string fingerprint, TimeSpan lease, TimeSpan expiration)
    {
        parameters.Add(new NpgsqlParameter<string> { NpgsqlDbType = NpgsqlDbType.Text, TypedValue = fingerprint });
        parameters.Add(new NpgsqlParameter<TimeSpan> { NpgsqlDbType = NpgsqlDbType.Interval, TypedValue = lease });
        parameters.Add(new NpgsqlParameter<TimeSpan> { NpgsqlDbType = NpgsqlDbType.Interval, TypedValue = expiration });
    }

    // The statement with each @name replaced by its position in names ($1 for the first): the order the parameters are added in.
    private static string Positional(string sql, params string[] names)
        => System.Text.RegularExpressions.Regex.Replace(sql, "@([a-z_]+)", match =>
        {
            var position = Array.IndexOf(names, match.Groups[1].Value);
            return position >= 0
                ? "$" + (position + 1).ToString(System.Globalization.CultureInfo.InvariantCulture)
                : throw new InvalidOperationException($"The statement names a parameter @{match.Groups[1].Value} that is not bound: {sql}");
        });

    internal static ReservationResult? Classify(NpgsqlDataReader reader, IdempotencyRecordId id, string fingerprint)
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
            Attempts = reader.GetInt32(13),
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
}
