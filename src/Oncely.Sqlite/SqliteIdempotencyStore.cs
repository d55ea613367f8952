using System.Data.Common;
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Oncely.Sqlite;

/// <summary>
/// Idempotency records in a SQLite database file. Every transition is one SQL statement decided by the row's state
/// under SQLite's single-writer lock, so reservations are exclusive across threads, store instances and processes
/// that share the file on one machine.
/// </summary>
/// <remarks>
/// <para>
/// Reads never write (decision-table row 20): a reservation first reads the key in an ordinary read transaction (WAL:
/// no lock that blocks or waits for the writer, nothing written to the file), and answers a replay, an in-progress
/// duplicate or a reused key from that read. Only a new, expired or takeable key goes on to the write lock.
/// </para>
/// <para>
/// Waiting never blocks a thread: every write takes SQLite's write lock with <c>BEGIN IMMEDIATE</c> through the native
/// API with the connection's busy timeout at zero, so a locked database answers at once, and the store waits
/// asynchronously (a short backoff) until the lock is free or <see cref="SqliteIdempotencyStoreOptions.BusyTimeout"/> /
/// the caller's token runs out. Writers of one store instance queue on an asynchronous gate first, so they do not poll
/// against each other; the gate is only an optimisation, the SQLite lock is the guarantee.
/// </para>
/// <para>
/// Time: SQLite is embedded, so the machine's clock is the store's clock. <c>now</c> comes from the injected
/// <see cref="TimeProvider"/> and is stored as integer Unix milliseconds.
/// </para>
/// <para>
/// Fencing tokens: a one-row counter table (<c>{table}_fence</c>) keeps the highest token handed out; it is read inside
/// the reserving statement and advanced by triggers in the same statement, and never reset, so every new token is above
/// every committed one, even after the record expired, was released or purged and was created again. The counter is
/// transactional, though: a one-commit reservation that rolls back takes its advance with it. So a new token is not the
/// counter + 1 but <c>max(counter's tick + 1, now in microseconds since 2020) * 4096 + a random 12-bit salt</c>, where
/// "now" is real time (<see cref="TimeProvider.System"/>, not the store clock, which a test may freeze). A reservation
/// after a rolled-back one runs after that rollback, so it gets a later tick; only if the wall clock stepped back
/// would two such reservations share a tick, and then the salt tells them apart (4095 times in 4096). Tokens stay
/// ordered (a take-over's token is above the stale one) and fit 63 bits until 2091.
/// </para>
/// </remarks>
internal sealed partial class SqliteIdempotencyStore
    : IIdempotencyStore, IIdempotencyStoreSweeper, IIdempotencyAuditStore, IIdempotencyStoreInitializer, ITransactionalIdempotencyStore
{
    private const int SqliteBusy = 5;
    private const int SqliteLocked = 6;
    private const int SqliteError = 1;
    private const int SqliteOk = 0;
    private static readonly TimeSpan MaxLockBackoff = TimeSpan.FromMilliseconds(25);
    private const string Columns = "fingerprint, state, fencing_token, lease_expires_at, expires_at, recovery_point, status_code, headers, body, body_omitted";
    private const string KeyPredicate = "tenant = @tenant AND operation = @operation AND idem_key = @key";

    // A new fencing token: (a tick, above the counter's) * 4096 + a salt. See the class remarks for why it is not counter + 1.
    private const string NewTokenSql = "(max((value >> 12) + 1, @token_tick) << 12) | @token_salt";
    private const int TokenSaltBits = 12;
    private static readonly DateTimeOffset TokenEpoch = new(2020, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static readonly long MaxUnixMilliseconds = DateTimeOffset.MaxValue.ToUnixTimeMilliseconds();
    private static readonly long MinUnixMilliseconds = DateTimeOffset.MinValue.ToUnixTimeMilliseconds();

    private readonly string _connectionString;
    private readonly string _dataSource;
    private readonly string? _databaseFile;
    private readonly string _table;
    private readonly string _auditTable;
    private readonly TimeSpan _busyTimeout;
    private readonly TimeProvider _clock;
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly string _reserveSql;
    private readonly string _readLiveSql;
    private readonly string _completeSql;
    private readonly string _releaseDeleteSql;
    private readonly string _releaseEndLeaseSql;
    private readonly string _setRecoveryPointSql;
    private readonly string _renewLeaseSql;
    private readonly string _purgeSql;
    private readonly string _auditSql;
    private readonly string _purgeAuditSql;
    private readonly Lock _initializationGate = new();
    private Task? _initialization;

    /// <summary>Creates the store; the schema is created on <see cref="InitializeAsync"/> or before the first operation.</summary>
    /// <param name="options">The validated options (copied).</param>
    /// <param name="timeProvider">The clock for leases and expiry; defaults to <see cref="TimeProvider.System"/>.</param>
    public SqliteIdempotencyStore(SqliteIdempotencyStoreOptions options, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options = options.Clone();
        options.Validate();
        _connectionString = options.ConnectionString;
        var parsed = new SqliteConnectionStringBuilder(options.ConnectionString);
        _dataSource = parsed.DataSource;
        _databaseFile = parsed.Mode == SqliteOpenMode.Memory || _dataSource.StartsWith("file:", StringComparison.OrdinalIgnoreCase) ? null : Path.GetFullPath(_dataSource);
        _table = options.TableName;
        _auditTable = options.AuditTableName;
        _busyTimeout = options.BusyTimeout;
        _clock = timeProvider ?? TimeProvider.System;

        var t = _table;

        // The reservation's write, in one statement, run only when a plain read found nothing the caller must be
        // answered with (see ReserveAsync), under the write lock taken by BEGIN IMMEDIATE. A new key inserts. An existing key is updated only when the row has
        // expired (it counts as absent: replaced, fresh expiry, no recovery point, attempts back to 1) or when it is
        // InProgress with the same fingerprint and an expired lease (a take-over: new token, new lease, expiry and
        // recovery point kept, attempts + 1). Any other existing row is left exactly as it is and nothing is returned.
        // The new token is above every token the counter has seen (see NewTokenSql); the triggers store it back into the
        // counter within the same statement.
        _reserveSql = $"""
            INSERT INTO "{t}" AS r (tenant, operation, idem_key, fingerprint, state, fencing_token, attempts,
                                    lease_expires_at, expires_at, recovery_point, status_code, headers, body, body_omitted, created_at)
            VALUES (@tenant, @operation, @key, @fingerprint, 0, (SELECT {NewTokenSql} FROM "{t}_fence" WHERE id = 1), 1,
                    @lease_expires_at, @expires_at, NULL, NULL, NULL, NULL, 0, @now)
            ON CONFLICT (tenant, operation, idem_key) DO UPDATE SET
                fingerprint      = excluded.fingerprint,
                state            = 0,
                fencing_token    = excluded.fencing_token,
                attempts         = CASE WHEN r.expires_at <= @now THEN 1 ELSE r.attempts + 1 END,
                lease_expires_at = excluded.lease_expires_at,
                expires_at       = CASE WHEN r.expires_at <= @now THEN excluded.expires_at ELSE r.expires_at END,
                recovery_point   = CASE WHEN r.expires_at <= @now THEN NULL ELSE r.recovery_point END,
                status_code      = NULL,
                headers          = NULL,
                body             = NULL,
                body_omitted     = 0,
                created_at       = CASE WHEN r.expires_at <= @now THEN @now ELSE r.created_at END
            WHERE r.expires_at <= @now
               OR (r.fingerprint = excluded.fingerprint AND r.state = 0 AND r.lease_expires_at <= @now)
            RETURNING fencing_token, attempts, lease_expires_at, expires_at, recovery_point;
            """;
        _readLiveSql = $"""SELECT {Columns} FROM "{t}" WHERE {KeyPredicate} AND expires_at > @now;""";
        _completeSql = $"""
            UPDATE "{t}"
            SET state = 1, status_code = @status_code, headers = @headers, body = @body, body_omitted = @body_omitted, expires_at = @expires_at
            WHERE {KeyPredicate} AND fencing_token = @token AND state = 0;
            """;
        _releaseDeleteSql = $"""DELETE FROM "{t}" WHERE {KeyPredicate} AND fencing_token = @token AND state = 0 AND recovery_point IS NULL;""";
        _releaseEndLeaseSql = $"""UPDATE "{t}" SET lease_expires_at = @now WHERE {KeyPredicate} AND fencing_token = @token AND state = 0 AND recovery_point IS NOT NULL;""";
        _setRecoveryPointSql = $"""
            UPDATE "{t}" SET recovery_point = @recovery_point, lease_expires_at = @lease_expires_at
            WHERE {KeyPredicate} AND fencing_token = @token AND state = 0 AND expires_at > @now;
            """;
        _renewLeaseSql = $"""
            UPDATE "{t}" SET lease_expires_at = @lease_expires_at
            WHERE {KeyPredicate} AND fencing_token = @token AND state = 0 AND expires_at > @now;
            """;
        _purgeSql = $"""DELETE FROM "{t}" WHERE id IN (SELECT id FROM "{t}" WHERE expires_at <= @now ORDER BY expires_at LIMIT @batch);""";
        _auditSql = $"""
            INSERT INTO "{_auditTable}" (tenant, operation, idem_key, stored_fingerprint, attempted_fingerprint, payload, occurred_at)
            VALUES (@tenant, @operation, @key, @stored_fingerprint, @attempted_fingerprint, @payload, @occurred_at);
            """;
        _purgeAuditSql = $"""
            DELETE FROM "{_auditTable}" WHERE id IN (
                SELECT id FROM "{_auditTable}" WHERE occurred_at < @cutoff ORDER BY occurred_at LIMIT @batch);
            """;
    }

    /// <inheritdoc />
    public ValueTask InitializeAsync(CancellationToken cancellationToken) => new(EnsureInitializedAsync(cancellationToken));

    /// <inheritdoc />
    public async ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fingerprint);
        cancellationToken.ThrowIfCancellationRequested();
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        return await ReserveAsync(id, fingerprint, lease, expiration, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(response);
        cancellationToken.ThrowIfCancellationRequested();
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var headers = StoredHeaders.Serialize(response.Headers);
        var body = AsArray(response.Body);
        return await WriteAsync(
            async (connection, ct) =>
            {
                using var command = CreateCommand(connection, _completeSql);
                BindCompletion(command, id, fencingToken, response, headers, body, expiration);
                return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 1;
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<bool> TryReleaseAsync(IdempotencyRecordId id, long fencingToken, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        return await WriteAsync(
            async (connection, ct) =>
            {
                // Two guarded statements whose conditions exclude each other (recovery point absent / present), so at
                // most one of them applies and each is atomic on its own. Only the token's holder can change the
                // recovery point, and it only ever goes from absent to present while the token holds; so if the
                // DELETE found a recovery point, the UPDATE sees the same row unless the token was taken over in
                // between, and then it correctly refuses.
                using (var delete = CreateCommand(connection, _releaseDeleteSql))
                {
                    AddKey(delete, id);
                    delete.Parameters.AddWithValue("@token", fencingToken);
                    if (await delete.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 1)
                    {
                        return true;
                    }
                }

                using var endLease = CreateCommand(connection, _releaseEndLeaseSql);
                AddKey(endLease, id);
                endLease.Parameters.AddWithValue("@token", fencingToken);
                endLease.Parameters.AddWithValue("@now", NowMilliseconds());
                return await endLease.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 1;
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<bool> TrySetRecoveryPointAsync(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(recoveryPoint);
        cancellationToken.ThrowIfCancellationRequested();
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        return await WriteAsync(
            async (connection, ct) =>
            {
                using var command = CreateCommand(connection, _setRecoveryPointSql);
                BindRecoveryPoint(command, id, fencingToken, recoveryPoint, lease);
                return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 1;
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<bool> TryRenewLeaseAsync(IdempotencyRecordId id, long fencingToken, TimeSpan lease, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        return await WriteAsync(
            async (connection, ct) =>
            {
                var now = NowMilliseconds();
                using var command = CreateCommand(connection, _renewLeaseSql);
                AddKey(command, id);
                command.Parameters.AddWithValue("@token", fencingToken);
                command.Parameters.AddWithValue("@lease_expires_at", After(now, lease));
                command.Parameters.AddWithValue("@now", now);
                return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 1;
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        return await RunAsync((connection, ct) => ReadLiveAsync(connection, id, NowMilliseconds(), ct), cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<int> PurgeExpiredAsync(int batchSize, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        cancellationToken.ThrowIfCancellationRequested();
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        return await WriteAsync(
            async (connection, ct) =>
            {
                using var command = CreateCommand(connection, _purgeSql);
                command.Parameters.AddWithValue("@now", NowMilliseconds());
                command.Parameters.AddWithValue("@batch", batchSize);
                return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Runs on <paramref name="transaction"/>'s connection, inside it; the records table must be in that connection's
    /// main database. Nothing is retried here: a failure is the caller's to roll back.
    /// </remarks>
    public async ValueTask<bool> TryCompleteAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(response);
        var sqlite = AsSqliteTransaction(transaction);
        var connection = TransactionConnection(sqlite);
        using var command = CreateCommand(connection, _completeSql, sqlite);
        BindCompletion(command, id, fencingToken, response, StoredHeaders.Serialize(response.Headers), AsArray(response.Body), expiration);
        return await ExecuteInTransactionAsync(command, connection, "complete the record", cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>Runs on <paramref name="transaction"/>'s connection, inside it; see <see cref="TryCompleteAsync(DbTransaction, IdempotencyRecordId, long, IdempotentResponse, TimeSpan, CancellationToken)"/>.</remarks>
    public async ValueTask<bool> TrySetRecoveryPointAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentException.ThrowIfNullOrEmpty(recoveryPoint);
        var sqlite = AsSqliteTransaction(transaction);
        var connection = TransactionConnection(sqlite);
        using var command = CreateCommand(connection, _setRecoveryPointSql, sqlite);
        BindRecoveryPoint(command, id, fencingToken, recoveryPoint, lease);
        return await ExecuteInTransactionAsync(command, connection, "set the recovery point", cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask AppendAsync(KeyReuseAuditEntry entry, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        cancellationToken.ThrowIfCancellationRequested();
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        await WriteAsync(
            async (connection, ct) =>
            {
                using var command = CreateCommand(connection, _auditSql);
                AddKey(command, entry.Id);
                command.Parameters.AddWithValue("@stored_fingerprint", entry.StoredFingerprint ?? string.Empty);
                command.Parameters.AddWithValue("@attempted_fingerprint", entry.AttemptedFingerprint ?? string.Empty);
                command.Parameters.AddWithValue("@payload", entry.Payload ?? string.Empty);
                command.Parameters.AddWithValue("@occurred_at", entry.OccurredAt.ToUnixTimeMilliseconds());
                return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>An entry's age is measured from its <see cref="KeyReuseAuditEntry.OccurredAt"/>, against the store's clock.</remarks>
    public async ValueTask<int> PurgeAuditAsync(TimeSpan retention, int batchSize, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(retention, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        cancellationToken.ThrowIfCancellationRequested();
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        return await WriteAsync(
            async (connection, ct) =>
            {
                using var command = CreateCommand(connection, _purgeAuditSql);
                command.Parameters.AddWithValue("@cutoff", After(NowMilliseconds(), -retention));
                command.Parameters.AddWithValue("@batch", batchSize);
                return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The reservation: a read, and a write only when the read shows the key absent, expired or takeable. The read is
    /// an ordinary autocommit SELECT: it waits for no lock and writes nothing, so replays, in-progress duplicates and
    /// reused keys cost one read (decision-table row 20) even while another connection holds the write lock. The write
    /// is the guarded upsert, under the write lock; when its guard refuses (another caller got there between the read
    /// and the lock), the row is read again under the same lock, where it cannot change, and reported as it stands.
    /// </summary>
    private async ValueTask<ReservationResult> ReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
    {
        var seen = await RunAsync((connection, ct) => ReadLiveAsync(connection, id, NowMilliseconds(), ct), cancellationToken).ConfigureAwait(false);
        if (seen is not null && Answer(seen, fingerprint, NowMilliseconds()) is { } answered)
        {
            return answered;
        }

        return await WriteAsync(
            async (connection, ct) =>
            {
                var now = NowMilliseconds();
                if (await UpsertAsync(connection, id, fingerprint, lease, expiration, now, ct).ConfigureAwait(false) is { } reserved)
                {
                    return reserved;
                }

                // Under the write lock nothing moves: the row the guard refused is live and not takeable at `now`.
                var existing = await ReadLiveAsync(connection, id, now, ct).ConfigureAwait(false);
                return existing is not null && Answer(existing, fingerprint, now) is { } answer
                    ? answer
                    : throw new IdempotencyStoreUnavailableException($"The SQLite idempotency store could not settle the reservation of '{id}': the guarded write and the read under the same lock disagree.");
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>What a live record answers a reservation with, or <see langword="null"/> when the caller may take it.</summary>
    private static ReservationResult? Answer(IdempotencyRecord existing, string fingerprint, long now)
    {
        if (!string.Equals(existing.Fingerprint, fingerprint, StringComparison.Ordinal))
        {
            return new ReservationResult(ReservationOutcome.FingerprintMismatch, existing);
        }

        if (existing.State == IdempotencyRecordState.Completed)
        {
            return new ReservationResult(ReservationOutcome.Completed, existing);
        }

        return existing.LeaseExpiresAt > FromUnixMilliseconds(now) ? new ReservationResult(ReservationOutcome.InProgress, existing) : null;
    }

    private async ValueTask<ReservationResult?> UpsertAsync(SqliteConnection connection, IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, long now, CancellationToken cancellationToken, SqliteTransaction? transaction = null)
    {
        using var upsert = CreateCommand(connection, _reserveSql, transaction);
        AddKey(upsert, id);
        upsert.Parameters.AddWithValue("@fingerprint", fingerprint);
        upsert.Parameters.AddWithValue("@lease_expires_at", After(now, lease));
        upsert.Parameters.AddWithValue("@expires_at", After(now, expiration));
        upsert.Parameters.AddWithValue("@now", now);
        upsert.Parameters.AddWithValue("@token_tick", (TimeProvider.System.GetUtcNow() - TokenEpoch).Ticks / TimeSpan.TicksPerMicrosecond);
        upsert.Parameters.AddWithValue("@token_salt", Random.Shared.Next(1 << TokenSaltBits));
        ReservationResult? reserved = null;
        var reader = await upsert.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var record = new IdempotencyRecord
                {
                    Id = id,
                    Fingerprint = fingerprint,
                    State = IdempotencyRecordState.InProgress,
                    FencingToken = reader.GetInt64(0),
                    LeaseExpiresAt = FromUnixMilliseconds(reader.GetInt64(2)),
                    ExpiresAt = FromUnixMilliseconds(reader.GetInt64(3)),
                    RecoveryPoint = reader.IsDBNull(4) ? null : reader.GetString(4),
                };
                reserved = new ReservationResult(reader.GetInt64(1) > 1 ? ReservationOutcome.TakenOver : ReservationOutcome.Acquired, record);
            }

            // Step the statement to its end. The reservation is reported as ours only once WriteAsync has committed it.
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
            }
        }

        return reserved;
    }

    private async ValueTask<IdempotencyRecord?> ReadLiveAsync(SqliteConnection connection, IdempotencyRecordId id, long now, CancellationToken cancellationToken, SqliteTransaction? transaction = null)
    {
        using var command = CreateCommand(connection, _readLiveSql, transaction);
        AddKey(command, id);
        command.Parameters.AddWithValue("@now", now);
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                return null;
            }

            var state = (IdempotencyRecordState)reader.GetInt32(1);
            IdempotentResponse? response = null;
            if (state == IdempotencyRecordState.Completed)
            {
                response = new IdempotentResponse(
                    reader.IsDBNull(6) ? 0 : reader.GetInt32(6),
                    StoredHeaders.Deserialize(reader.IsDBNull(7) ? null : reader.GetString(7)),
                    reader.IsDBNull(8) ? ReadOnlyMemory<byte>.Empty : reader.GetFieldValue<byte[]>(8),
                    !reader.IsDBNull(9) && reader.GetInt64(9) != 0);
            }

            return new IdempotencyRecord
            {
                Id = id,
                Fingerprint = reader.GetString(0),
                State = state,
                FencingToken = reader.GetInt64(2),
                LeaseExpiresAt = FromUnixMilliseconds(reader.GetInt64(3)),
                ExpiresAt = FromUnixMilliseconds(reader.GetInt64(4)),
                RecoveryPoint = reader.IsDBNull(5) ? null : reader.GetString(5),
                Response = response,
            };
        }
    }

    private Task EnsureInitializedAsync(CancellationToken cancellationToken)
    {
        var initialization = Volatile.Read(ref _initialization);
        if (initialization is { IsCompletedSuccessfully: true })
        {
            return Task.CompletedTask;
        }

        lock (_initializationGate)
        {
            // A failed or canceled attempt is forgotten so the next call tries again (the database may be back).
            if (_initialization is null || _initialization.IsFaulted || _initialization.IsCanceled)
            {
                _initialization = MigrateAsync();
            }

            initialization = _initialization;
        }

        return initialization.WaitAsync(cancellationToken);
    }

    private Task MigrateAsync() => RunAsync(
        async (connection, ct) =>
        {
            // WAL lets readers proceed while one writer commits, and survives in the file once set.
            using (var mode = CreateCommand(connection, "PRAGMA journal_mode;"))
            {
                var current = Convert.ToString(await mode.ExecuteScalarAsync(ct).ConfigureAwait(false), CultureInfo.InvariantCulture);
                if (!string.Equals(current, "wal", StringComparison.OrdinalIgnoreCase) && !string.Equals(current, "memory", StringComparison.OrdinalIgnoreCase))
                {
                    using var setWal = CreateCommand(connection, "PRAGMA journal_mode = WAL;");
                    await setWal.ExecuteScalarAsync(ct).ConfigureAwait(false);
                }
            }

            // BEGIN IMMEDIATE: one migrator at a time across processes; a second one then sees the version written.
            using var transaction = connection.BeginTransaction(deferred: false);
            using (var versionTable = CreateCommand(connection, $"""CREATE TABLE IF NOT EXISTS "{SqliteSchema.VersionTable}" (component TEXT NOT NULL PRIMARY KEY, version INTEGER NOT NULL, applied_at INTEGER NOT NULL);""", transaction))
            {
                await versionTable.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            long applied;
            using (var read = CreateCommand(connection, $"""SELECT version FROM "{SqliteSchema.VersionTable}" WHERE component = @component;""", transaction))
            {
                read.Parameters.AddWithValue("@component", _table);
                applied = await read.ExecuteScalarAsync(ct).ConfigureAwait(false) is long version ? version : 0;
            }

            var migrations = SqliteSchema.Migrations(_table, _auditTable);
            if (applied > migrations.Count)
            {
                throw new IdempotencyStoreUnavailableException(
                    string.Create(
                        CultureInfo.InvariantCulture,
                        $"The SQLite idempotency table '{_table}' in '{_dataSource}' is at schema version {applied}, newer than this Oncely.Sqlite supports ({migrations.Count}). Upgrade the Oncely.Sqlite package."));
            }

            for (var i = (int)applied; i < migrations.Count; i++)
            {
                using var migrate = CreateCommand(connection, migrations[i], transaction);
                await migrate.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            if (applied < migrations.Count)
            {
                using var record = CreateCommand(
                    connection,
                    $"""
                    INSERT INTO "{SqliteSchema.VersionTable}" (component, version, applied_at) VALUES (@component, @version, @applied_at)
                    ON CONFLICT (component) DO UPDATE SET version = excluded.version, applied_at = excluded.applied_at;
                    """,
                    transaction);
                record.Parameters.AddWithValue("@component", _table);
                record.Parameters.AddWithValue("@version", migrations.Count);
                record.Parameters.AddWithValue("@applied_at", NowMilliseconds());
                await record.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            transaction.Commit();
            return true;
        },
        CancellationToken.None).AsTask();

    /// <summary>
    /// Runs <paramref name="work"/> on a fresh pooled connection. While the database is locked (SQLITE_BUSY /
    /// SQLITE_LOCKED) the work is retried with short backoff until <see cref="SqliteIdempotencyStoreOptions.BusyTimeout"/>
    /// has passed in real time; a locked statement changed nothing, so a retry can never execute anything twice. Every
    /// other SQLite or I/O failure becomes <see cref="IdempotencyStoreUnavailableException"/>.
    /// </summary>
    private ValueTask<T> RunAsync<T>(Func<SqliteConnection, CancellationToken, ValueTask<T>> work, CancellationToken cancellationToken)
        => RunAsync(work, TimeProvider.System.GetTimestamp(), cancellationToken);

    private async ValueTask<T> RunAsync<T>(Func<SqliteConnection, CancellationToken, ValueTask<T>> work, long started, CancellationToken cancellationToken)
    {
        // The busy budget is real elapsed time, not the store clock (a fake clock in tests never moves on its own).
        var backoff = TimeSpan.FromMilliseconds(5);
        while (true)
        {
            try
            {
                var connection = new SqliteConnection(_connectionString);
                await using (connection.ConfigureAwait(false))
                {
                    await connection.OpenAsync(cancellationToken).ConfigureAwait(false);

                    // No statement, just the native setting: a locked database answers SQLITE_BUSY at once and the
                    // store waits asynchronously (BeginImmediateAsync, the retry below) instead of sleeping on a thread.
                    // Set on every open, because the pooled handle may come from a connection that changed it.
                    raw.sqlite3_busy_timeout(connection.Handle, 0);

                    return await work(connection, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (SqliteException e) when (IsBusy(e))
            {
                var remaining = _busyTimeout - TimeProvider.System.GetElapsedTime(started);
                if (remaining <= TimeSpan.Zero)
                {
                    throw LockedTooLong(e);
                }

                await Task.Delay(backoff < remaining ? backoff : remaining, cancellationToken).ConfigureAwait(false);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromMilliseconds(100).Ticks));
            }
            catch (SqliteException e)
            {
                throw new IdempotencyStoreUnavailableException(
                    $"The SQLite idempotency store '{_dataSource}' failed: {e.Message}", e);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new IdempotencyStoreUnavailableException(
                    $"The SQLite idempotency store '{_dataSource}' could not be accessed: {e.Message}", e);
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> as one write transaction: in the store's write queue, under SQLite's write lock
    /// (<c>BEGIN IMMEDIATE</c>), committed at the end (one commit, one WAL sync) or rolled back on any failure. The
    /// whole wait, in the queue and for the lock, is asynchronous and bounded by
    /// <see cref="SqliteIdempotencyStoreOptions.BusyTimeout"/> and <paramref name="cancellationToken"/>.
    /// </summary>
    private async ValueTask<T> WriteAsync<T>(Func<SqliteConnection, CancellationToken, ValueTask<T>> work, CancellationToken cancellationToken)
    {
        var started = TimeProvider.System.GetTimestamp();
        if (!await _writeGate.WaitAsync(_busyTimeout, cancellationToken).ConfigureAwait(false))
        {
            throw LockedTooLong(null);
        }

        try
        {
            return await RunAsync(
                async (connection, ct) =>
                {
                    var handle = connection.Handle!;
                    await BeginImmediateAsync(handle, started, ct).ConfigureAwait(false);
                    try
                    {
                        var result = await work(connection, ct).ConfigureAwait(false);
                        SqliteException.ThrowExceptionForRC(raw.sqlite3_exec(handle, "COMMIT"), handle);
                        return result;
                    }
                    finally
                    {
                        // Anything short of a successful COMMIT leaves nothing behind, and no open transaction on the pooled handle.
                        if (raw.sqlite3_get_autocommit(handle) == 0)
                        {
                            _ = raw.sqlite3_exec(handle, "ROLLBACK");
                        }
                    }
                },
                started,
                cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    /// <summary>Takes the write lock, waiting asynchronously while another connection holds it, until the busy budget runs out.</summary>
    private async ValueTask BeginImmediateAsync(sqlite3 handle, long started, CancellationToken cancellationToken)
    {
        var backoff = TimeSpan.FromMilliseconds(1);
        while (true)
        {
            var rc = raw.sqlite3_exec(handle, "BEGIN IMMEDIATE");
            if (rc == SqliteOk)
            {
                return;
            }

            if ((rc & 0xFF) is not (SqliteBusy or SqliteLocked))
            {
                SqliteException.ThrowExceptionForRC(rc, handle);
            }

            var remaining = _busyTimeout - TimeProvider.System.GetElapsedTime(started);
            if (remaining <= TimeSpan.Zero)
            {
                throw LockedTooLong(null);
            }

            await Task.Delay(backoff < remaining ? backoff : remaining, cancellationToken).ConfigureAwait(false);
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxLockBackoff.Ticks));
        }
    }

    private IdempotencyStoreUnavailableException LockedTooLong(Exception? inner)
    {
        var message = string.Create(
            CultureInfo.InvariantCulture,
            $"The SQLite idempotency store '{_dataSource}' stayed locked by another connection for longer than BusyTimeout ({_busyTimeout.TotalSeconds:0.###} s).");
        return inner is null ? new IdempotencyStoreUnavailableException(message) : new IdempotencyStoreUnavailableException(message, inner);
    }

    private static SqliteTransaction AsSqliteTransaction(DbTransaction transaction)
        => transaction as SqliteTransaction
            ?? throw new InvalidOperationException(
                $"The SQLite idempotency store received a {transaction.GetType().FullName}, but it can only write inside a Microsoft.Data.Sqlite.SqliteTransaction " +
                "on the store's database. Begin the transaction on a SqliteConnection to the database UseSqlite points at (or use the store of the database the transaction is on).");

    private static SqliteConnection TransactionConnection(SqliteTransaction transaction)
        => transaction.Connection
            ?? throw new InvalidOperationException("The SqliteTransaction has already been committed or rolled back; complete the idempotency record before committing.");

    /// <summary>
    /// Runs one guarded statement in the caller's transaction. When it changes no row, checks why: a connection to a
    /// database without the records table, or to another database file than the store's, is a configuration error
    /// (<see cref="InvalidOperationException"/>), not a lost lease.
    /// </summary>
    private async ValueTask<bool> ExecuteInTransactionAsync(SqliteCommand command, SqliteConnection connection, string operation, CancellationToken cancellationToken)
    {
        int changed;
        try
        {
            changed = await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (SqliteException e) when ((e.SqliteErrorCode & 0xFF) == SqliteError && e.Message.Contains("no such table", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidOperationException(MissingTableMessage(connection), e);
        }
        catch (SqliteException e)
        {
            throw new IdempotencyStoreUnavailableException($"The SQLite idempotency store could not {operation} inside the application's transaction: {e.Message}", e);
        }

        if (changed == 1)
        {
            return true;
        }

        if (!IsStoreDatabase(connection))
        {
            throw new InvalidOperationException(
                $"The transaction is on the SQLite database '{connection.DataSource}', but the idempotency records are in '{_dataSource}'. " +
                "Transactional completion writes the record in the application's own transaction, so the records table must be in the same database: " +
                "open the transaction on the store's database (or point UseSqlite at the application's database).");
        }

        return false;
    }

    private string MissingTableMessage(SqliteConnection connection)
        => $"The SQLite database '{connection.DataSource}' that the transaction is on has no idempotency records table \"{_table}\". " +
           $"Transactional completion writes the record in the application's own transaction, so the records table must be in the same database: " +
           $"point UseSqlite at the application's database (the store uses '{_dataSource}').";

    private bool IsStoreDatabase(SqliteConnection connection)
    {
        // In-memory databases (shared cache) have no file name to compare.
        var transactionDatabase = connection.DataSource;
        if (_databaseFile is null || string.IsNullOrEmpty(transactionDatabase))
        {
            return true;
        }

        try
        {
            return string.Equals(Path.GetFullPath(transactionDatabase), _databaseFile, OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            return true;
        }
    }

    private static bool IsBusy(SqliteException exception)
        => (exception.SqliteErrorCode & 0xFF) is SqliteBusy or SqliteLocked;

    private static SqliteCommand CreateCommand(SqliteConnection connection, string sql, SqliteTransaction? transaction = null)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;

        // Microsoft.Data.Sqlite adds its own busy loop bounded by CommandTimeout (whole seconds; 0 would mean forever).
        // The wait that matters is SQLite's busy_timeout plus the bounded retry in RunAsync, so keep this one short.
        command.CommandTimeout = 1;
        return command;
    }

    private static void AddKey(SqliteCommand command, IdempotencyRecordId id)
    {
        command.Parameters.AddWithValue("@tenant", id.Tenant);
        command.Parameters.AddWithValue("@operation", id.Operation);
        command.Parameters.AddWithValue("@key", id.Key);
    }

    private static byte[] AsArray(ReadOnlyMemory<byte> body)
        => MemoryMarshal.TryGetArray(body, out var segment) && segment.Array is { } array && segment.Offset == 0 && segment.Count == array.Length
            ? array
            : body.ToArray();

    private long NowMilliseconds() => _clock.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary><paramref name="now"/> plus <paramref name="span"/> in whole milliseconds (rounded up), saturating at the representable range.</summary>
    private static long After(long now, TimeSpan span)
    {
        var ms = span.Ticks >= 0
            ? (span.Ticks / TimeSpan.TicksPerMillisecond) + (span.Ticks % TimeSpan.TicksPerMillisecond == 0 ? 0 : 1)
            : span.Ticks / TimeSpan.TicksPerMillisecond;
        if (ms > 0 && now > MaxUnixMilliseconds - ms)
        {
            return MaxUnixMilliseconds;
        }

        if (ms < 0 && now < MinUnixMilliseconds - ms)
        {
            return MinUnixMilliseconds;
        }

        return now + ms;
    }

    private static DateTimeOffset FromUnixMilliseconds(long value)
        => DateTimeOffset.FromUnixTimeMilliseconds(Math.Clamp(value, MinUnixMilliseconds, MaxUnixMilliseconds));

    // One binding per statement, shared by the standalone and the in-transaction paths so they cannot drift apart.
    private void BindCompletion(SqliteCommand command, IdempotencyRecordId id, long fencingToken, IdempotentResponse response, string headers, byte[] body, TimeSpan expiration)
    {
        AddKey(command, id);
        command.Parameters.AddWithValue("@token", fencingToken);
        command.Parameters.AddWithValue("@status_code", response.StatusCode);
        command.Parameters.AddWithValue("@headers", headers);
        command.Parameters.Add("@body", SqliteType.Blob).Value = body;
        command.Parameters.AddWithValue("@body_omitted", response.BodyOmitted ? 1 : 0);
        command.Parameters.AddWithValue("@expires_at", After(NowMilliseconds(), expiration));
    }

    private void BindRecoveryPoint(SqliteCommand command, IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease)
    {
        var now = NowMilliseconds();
        AddKey(command, id);
        command.Parameters.AddWithValue("@token", fencingToken);
        command.Parameters.AddWithValue("@recovery_point", recoveryPoint);
        command.Parameters.AddWithValue("@lease_expires_at", After(now, lease));
        command.Parameters.AddWithValue("@now", now);
    }
}
