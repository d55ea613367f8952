using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Data.Sqlite;

namespace Oncely.Sqlite;

/// <summary>
/// Every statement the SQLite store runs on the records and audit tables, each kept with what belongs to it: its text,
/// the parameters it binds and, for those that answer rows, how its reply is read (column positions included). To
/// change a statement, change it here only; the store decides which to run and when.
/// </summary>
/// <remarks>
/// Times are integer Unix milliseconds from the store clock (<see cref="SqliteUnixTime"/>); states are
/// <see cref="IdempotencyRecordState"/> as integers (0 InProgress, 1 Completed). Every fenced write names the key and
/// the caller's fencing token and requires the record to be InProgress.
/// </remarks>
internal sealed class SqliteStatements
{
    private const string KeyPredicate = "tenant = @tenant AND operation = @operation AND idem_key = @key";
    private const string RecordColumns = "fingerprint, state, fencing_token, lease_expires_at, expires_at, recovery_point, status_code, headers, body, body_omitted, attempts";

    // A new fencing token: (a tick above the counter's) * 4096 + a salt; see ReserveCommand for why it is not counter + 1.
    private const string NewTokenSql = "(max((value >> 12) + 1, @token_tick) << 12) | @token_salt";
    private const int TokenSaltBits = 12;
    private static readonly DateTimeOffset TokenEpoch = new(2020, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly string _reserve;
    private readonly string _readLive;
    private readonly string _complete;
    private readonly string _releaseDelete;
    private readonly string _releaseEndLease;
    private readonly string _setRecoveryPoint;
    private readonly string _renewLease;
    private readonly string _purgeExpired;
    private readonly string _appendAudit;
    private readonly string _purgeAudit;

    /// <summary>Builds the statements for the given (validated) table names.</summary>
    public SqliteStatements(string table, string auditTable)
    {
        var t = table;

        // The reservation's write, in one statement, run only when a plain read found nothing the caller must be
        // answered with, under the write lock. A new key inserts. An existing key is updated only when the row has
        // expired (it counts as absent: replaced, fresh expiry, no recovery point, attempts back to 1) or when it is
        // InProgress with the same fingerprint and an expired lease (a take-over: new token, new lease, expiry and
        // recovery point kept, attempts + 1). Any other existing row is left exactly as it is and nothing is returned.
        // The new token is above every token the counter has seen; the schema's triggers store it back into the counter
        // within the same statement.
        _reserve = $"""
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
        _readLive = $"""SELECT {RecordColumns} FROM "{t}" WHERE {KeyPredicate} AND expires_at > @now;""";
        _complete = $"""
            UPDATE "{t}"
            SET state = 1, status_code = @status_code, headers = @headers, body = @body, body_omitted = @body_omitted, expires_at = @expires_at
            WHERE {KeyPredicate} AND fencing_token = @token AND state = 0;
            """;
        _releaseDelete = $"""DELETE FROM "{t}" WHERE {KeyPredicate} AND fencing_token = @token AND state = 0 AND recovery_point IS NULL;""";
        _releaseEndLease = $"""UPDATE "{t}" SET lease_expires_at = @now WHERE {KeyPredicate} AND fencing_token = @token AND state = 0 AND recovery_point IS NOT NULL;""";
        _setRecoveryPoint = $"""
            UPDATE "{t}" SET recovery_point = @recovery_point, lease_expires_at = @lease_expires_at
            WHERE {KeyPredicate} AND fencing_token = @token AND state = 0 AND expires_at > @now;
            """;
        _renewLease = $"""
            UPDATE "{t}" SET lease_expires_at = @lease_expires_at
            WHERE {KeyPredicate} AND fencing_token = @token AND state = 0 AND expires_at > @now;
            """;
        _purgeExpired = $"""DELETE FROM "{t}" WHERE id IN (SELECT id FROM "{t}" WHERE expires_at <= @now ORDER BY expires_at LIMIT @batch);""";
        _appendAudit = $"""
            INSERT INTO "{auditTable}" (tenant, operation, idem_key, stored_fingerprint, attempted_fingerprint, payload, occurred_at)
            VALUES (@tenant, @operation, @key, @stored_fingerprint, @attempted_fingerprint, @payload, @occurred_at);
            """;
        _purgeAudit = $"""
            DELETE FROM "{auditTable}" WHERE id IN (
                SELECT id FROM "{auditTable}" WHERE occurred_at < @cutoff ORDER BY occurred_at LIMIT @batch);
            """;
    }

    /// <summary>
    /// The guarded upsert that reserves (inserts, replaces an expired record or takes one over); read its reply with
    /// <see cref="ReadReservationAsync"/>.
    /// </summary>
    /// <remarks>
    /// Fencing tokens: the <c>{table}_fence</c> counter keeps the highest token handed out and is never reset, so a new
    /// token is above every committed one, even after the record expired, was released or purged and was created
    /// again. The counter is transactional, though: a one-commit reservation that rolls back takes its advance with it.
    /// So a new token is not the counter + 1 but <c>max(counter's tick + 1, now in microseconds since 2020) * 4096 + a
    /// random 12-bit salt</c>, "now" being real time (<see cref="TimeProvider.System"/>, not the store clock, which a
    /// test may freeze). A reservation made after a rolled-back one runs after that rollback, so it gets a later tick;
    /// only if the wall clock stepped back would the two share a tick, and then the salt tells them apart (4095 times in
    /// 4096). Tokens stay ordered (a take-over's token is above the stale one) and fit 63 bits until 2091.
    /// </remarks>
    public SqliteCommand Reserve(SqliteConnection connection, SqliteTransaction? transaction, IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, long now)
    {
        var command = SqliteDatabase.CreateCommand(connection, _reserve, transaction);
        AddKey(command, id);
        command.Parameters.AddWithValue("@fingerprint", fingerprint);
        command.Parameters.AddWithValue("@lease_expires_at", SqliteUnixTime.After(now, lease));
        command.Parameters.AddWithValue("@expires_at", SqliteUnixTime.After(now, expiration));
        command.Parameters.AddWithValue("@now", now);
        command.Parameters.AddWithValue("@token_tick", (TimeProvider.System.GetUtcNow() - TokenEpoch).Ticks / TimeSpan.TicksPerMicrosecond);
        command.Parameters.AddWithValue("@token_salt", Random.Shared.Next(1 << TokenSaltBits));
        return command;
    }

    /// <summary>
    /// The caller's reservation when <see cref="Reserve"/> wrote the row, else <see langword="null"/> (the guard
    /// refused: a live record the caller may not take). Runs the statement to its end and disposes it.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public static async ValueTask<ReservationResult?> ReadReservationAsync(SqliteCommand command, IdempotencyRecordId id, string fingerprint, CancellationToken cancellationToken)
    {
        using (command)
        {
            ReservationResult? reserved = null;
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                // RETURNING fencing_token, attempts, lease_expires_at, expires_at, recovery_point.
                if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    var record = new IdempotencyRecord
                    {
                        Id = id,
                        Fingerprint = fingerprint,
                        State = IdempotencyRecordState.InProgress,
                        FencingToken = reader.GetInt64(0),
                        LeaseExpiresAt = SqliteUnixTime.ToDateTimeOffset(reader.GetInt64(2)),
                        ExpiresAt = SqliteUnixTime.ToDateTimeOffset(reader.GetInt64(3)),
                        RecoveryPoint = reader.IsDBNull(4) ? null : reader.GetString(4),
                        Attempts = reader.GetInt32(1),
                    };
                    reserved = new ReservationResult(record.Attempts > 1 ? ReservationOutcome.TakenOver : ReservationOutcome.Acquired, record);
                }

                // Step the statement to its end. The reservation is the caller's only once its transaction commits.
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                }
            }

            return reserved;
        }
    }

    /// <summary>The key's live record (expired reads as absent); read its reply with <see cref="ReadRecordAsync"/>.</summary>
    public SqliteCommand ReadLive(SqliteConnection connection, SqliteTransaction? transaction, IdempotencyRecordId id, long now)
    {
        var command = SqliteDatabase.CreateCommand(connection, _readLive, transaction);
        AddKey(command, id);
        command.Parameters.AddWithValue("@now", now);
        return command;
    }

    /// <summary>The record <see cref="ReadLive"/> found, or <see langword="null"/>. Disposes the command.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public static async ValueTask<IdempotencyRecord?> ReadRecordAsync(SqliteCommand command, IdempotencyRecordId id, CancellationToken cancellationToken)
    {
        using (command)
        {
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    return null;
                }

                // RecordColumns, in order.
                var state = (IdempotencyRecordState)reader.GetInt32(1);
                return new IdempotencyRecord
                {
                    Id = id,
                    Fingerprint = reader.GetString(0),
                    State = state,
                    FencingToken = reader.GetInt64(2),
                    LeaseExpiresAt = SqliteUnixTime.ToDateTimeOffset(reader.GetInt64(3)),
                    ExpiresAt = SqliteUnixTime.ToDateTimeOffset(reader.GetInt64(4)),
                    RecoveryPoint = reader.IsDBNull(5) ? null : reader.GetString(5),
                    Attempts = reader.GetInt32(10),
                    Response = state != IdempotencyRecordState.Completed
                        ? null
                        : new IdempotentResponse(
                            reader.IsDBNull(6) ? 0 : reader.GetInt32(6),
                            StoredHeaders.Deserialize(reader.IsDBNull(7) ? null : reader.GetString(7)),
                            reader.IsDBNull(8) ? ReadOnlyMemory<byte>.Empty : reader.GetFieldValue<byte[]>(8),
                            !reader.IsDBNull(9) && reader.GetInt64(9) != 0),
                };
            }
        }
    }

    /// <summary>Stores the response and marks the record Completed (fenced); changes one row or none.</summary>
    public SqliteCommand Complete(SqliteConnection connection, SqliteTransaction? transaction, IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, long now)
    {
        var command = SqliteDatabase.CreateCommand(connection, _complete, transaction);
        AddKey(command, id);
        command.Parameters.AddWithValue("@token", fencingToken);
        command.Parameters.AddWithValue("@status_code", response.StatusCode);
        command.Parameters.AddWithValue("@headers", StoredHeaders.Serialize(response.Headers));
        command.Parameters.Add("@body", SqliteType.Blob).Value = AsArray(response.Body);
        command.Parameters.AddWithValue("@body_omitted", response.BodyOmitted ? 1 : 0);
        command.Parameters.AddWithValue("@expires_at", SqliteUnixTime.After(now, expiration));
        return command;
    }

    /// <summary>
    /// Release, first half: deletes the record when it has no recovery point (fenced). The second half,
    /// <see cref="ReleaseEndLease"/>, has the opposite condition, so at most one of them applies.
    /// </summary>
    public SqliteCommand ReleaseDelete(SqliteConnection connection, IdempotencyRecordId id, long fencingToken)
    {
        var command = SqliteDatabase.CreateCommand(connection, _releaseDelete);
        AddKey(command, id);
        command.Parameters.AddWithValue("@token", fencingToken);
        return command;
    }

    /// <summary>Release, second half: keeps a record that has a recovery point and ends its lease now (fenced).</summary>
    public SqliteCommand ReleaseEndLease(SqliteConnection connection, IdempotencyRecordId id, long fencingToken, long now)
    {
        var command = SqliteDatabase.CreateCommand(connection, _releaseEndLease);
        AddKey(command, id);
        command.Parameters.AddWithValue("@token", fencingToken);
        command.Parameters.AddWithValue("@now", now);
        return command;
    }

    /// <summary>Records the committed phase and renews the lease on a live record (fenced); changes one row or none.</summary>
    public SqliteCommand SetRecoveryPoint(SqliteConnection connection, SqliteTransaction? transaction, IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, long now)
    {
        var command = SqliteDatabase.CreateCommand(connection, _setRecoveryPoint, transaction);
        AddKey(command, id);
        command.Parameters.AddWithValue("@token", fencingToken);
        command.Parameters.AddWithValue("@recovery_point", recoveryPoint);
        command.Parameters.AddWithValue("@lease_expires_at", SqliteUnixTime.After(now, lease));
        command.Parameters.AddWithValue("@now", now);
        return command;
    }

    /// <summary>Extends the lease of a live InProgress record from now (fenced); changes one row or none.</summary>
    public SqliteCommand RenewLease(SqliteConnection connection, IdempotencyRecordId id, long fencingToken, TimeSpan lease, long now)
    {
        var command = SqliteDatabase.CreateCommand(connection, _renewLease);
        AddKey(command, id);
        command.Parameters.AddWithValue("@token", fencingToken);
        command.Parameters.AddWithValue("@lease_expires_at", SqliteUnixTime.After(now, lease));
        command.Parameters.AddWithValue("@now", now);
        return command;
    }

    /// <summary>Deletes up to <paramref name="batchSize"/> expired records, oldest expiry first; answers the count.</summary>
    public SqliteCommand PurgeExpired(SqliteConnection connection, int batchSize, long now)
    {
        var command = SqliteDatabase.CreateCommand(connection, _purgeExpired);
        command.Parameters.AddWithValue("@now", now);
        command.Parameters.AddWithValue("@batch", batchSize);
        return command;
    }

    /// <summary>Appends one key-reuse audit entry.</summary>
    public SqliteCommand AppendAudit(SqliteConnection connection, KeyReuseAuditEntry entry)
    {
        var command = SqliteDatabase.CreateCommand(connection, _appendAudit);
        AddKey(command, entry.Id);
        command.Parameters.AddWithValue("@stored_fingerprint", entry.StoredFingerprint ?? string.Empty);
        command.Parameters.AddWithValue("@attempted_fingerprint", entry.AttemptedFingerprint ?? string.Empty);
        command.Parameters.AddWithValue("@payload", entry.Payload ?? string.Empty);
        command.Parameters.AddWithValue("@occurred_at", entry.OccurredAt.ToUnixTimeMilliseconds());
        return command;
    }

    /// <summary>Deletes up to <paramref name="batchSize"/> audit entries older than <paramref name="retention"/>; answers the count.</summary>
    public SqliteCommand PurgeAudit(SqliteConnection connection, TimeSpan retention, int batchSize, long now)
    {
        var command = SqliteDatabase.CreateCommand(connection, _purgeAudit);
        command.Parameters.AddWithValue("@cutoff", SqliteUnixTime.After(now, -retention));
        command.Parameters.AddWithValue("@batch", batchSize);
        return command;
    }

    /// <summary>Runs a fenced statement and disposes it; answers whether it changed exactly one row (the caller's record).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public static async ValueTask<bool> ChangedOneAsync(SqliteCommand command, CancellationToken cancellationToken)
    {
        using (command)
        {
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
        }
    }

    /// <summary>Runs a statement that changes rows and disposes it; answers how many it changed.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public static async ValueTask<int> ExecuteAsync(SqliteCommand command, CancellationToken cancellationToken)
    {
        using (command)
        {
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
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
}
