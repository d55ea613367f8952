using System.Data;
using System.Data.Common;
using System.Globalization;
using Npgsql;
using NpgsqlTypes;

namespace Oncely.PostgreSql;

/// <summary>
/// One-commit mode: the reservation runs inside the application's transaction, so the reservation, the business writes
/// and the completion commit once.
/// </summary>
/// <remarks>
/// The reservation is the same statement as <see cref="TryReserveAsync(IdempotencyRecordId, string, TimeSpan, TimeSpan, CancellationToken)"/>
/// (insert, replace an expired record, or take over a same-fingerprint record whose lease expired, with a new fencing
/// token from the sequence), sent on the transaction's connection. Its uncommitted row holds the key's unique-index
/// entry: a concurrent duplicate's insert waits on this transaction (PostgreSQL's speculative-insertion wait), bounded
/// by <c>lock_timeout</c>, which is set for the reservation statement only and then put back, so the application's own
/// statements keep their setting. When this transaction commits, the waiting statement ends without inserting and the
/// next statement (a new snapshot, in READ COMMITTED) reads the committed record: the duplicate replays it. When this
/// transaction rolls back, the duplicate's insert goes through and it executes.
/// </remarks>
internal sealed partial class PostgreSqlIdempotencyStore
{
    // One round trip: keep the transaction's lock_timeout, bound the reservation's wait, reserve, put lock_timeout back.
    // Each is its own statement, so they run in order; set_config(..., true) lasts until the transaction ends at most.
    private const string SaveLockTimeoutSql = "SELECT set_config('oncely.lock_timeout_before', current_setting('lock_timeout'), true)";
    private const string SetLockTimeoutSql = "SELECT set_config('lock_timeout', @lock_timeout, true)";
    private const string RestoreLockTimeoutSql = "SELECT set_config('lock_timeout', current_setting('oncely.lock_timeout_before'), true)";

    /// <inheritdoc />
    /// <remarks>
    /// Npgsql's transient failures: a lost, refused or timed-out connection, a connection exception (SQLSTATE class 08),
    /// the server shutting down, crashing or starting (57P01, 57P02, 57P03), too many connections (53300), a
    /// serialization failure (40001), a deadlock (40P01), a lock wait that ran out (55P03).
    /// </remarks>
    public bool IsTransientFailure(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return PostgreSqlFailures.IsTransientTransactionFailure(exception);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Runs on <paramref name="transaction"/>'s connection, inside it, with the server's clock. A wait that runs out
    /// (<c>lock_not_available</c>) is reported as <see cref="ReservationOutcome.InProgress"/>; under REPEATABLE READ or
    /// SERIALIZABLE a record committed after the transaction's snapshot cannot be read inside it
    /// (<c>serialization_failure</c>), which is reported as <see cref="ReservationOutcome.InProgress"/> without a record,
    /// for the caller to read after rolling back. Both leave the transaction aborted.
    /// </remarks>
    public async ValueTask<TransactionalReservationResult> TryReserveAsync(DbTransaction transaction, IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(fingerprint);
        var npgsql = AsNpgsqlTransaction(transaction);
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var lockTimeoutText = ((long)Math.Ceiling(lockTimeout.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture);
        try
        {
            for (var attempt = 1; attempt <= MaxReserveAttempts; attempt++)
            {
                using var command = CreateCommand(npgsql, $"{SaveLockTimeoutSql};\n{SetLockTimeoutSql};\n{_reserveSql};\n{RestoreLockTimeoutSql}", id);

                // The wait for the other transaction is on top of the store's usual bound for one call.
                command.CommandTimeout = _commandTimeoutSeconds + (int)Math.Ceiling(lockTimeout.TotalSeconds);
                command.Parameters.Add(new NpgsqlParameter<string>("lock_timeout", NpgsqlDbType.Text) { TypedValue = lockTimeoutText });
                command.Parameters.Add(new NpgsqlParameter<string>("fingerprint", NpgsqlDbType.Text) { TypedValue = fingerprint });
                command.Parameters.Add(new NpgsqlParameter<TimeSpan>("lease", NpgsqlDbType.Interval) { TypedValue = lease });
                command.Parameters.Add(new NpgsqlParameter<TimeSpan>("expiration", NpgsqlDbType.Interval) { TypedValue = expiration });
                ReservationResult? result = null;
                var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    // Past the two set_config results to the reservation's.
                    await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
                    await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
                    if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        result = Classify(reader, id, fingerprint);
                    }

                    while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false))
                    {
                    }
                }

                if (result is { } settled)
                {
                    return new TransactionalReservationResult(settled.Outcome, settled.Record);
                }
            }

            // The record kept changing between statements: let the caller roll back and read it.
            return new TransactionalReservationResult(ReservationOutcome.InProgress, null);
        }
        catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.LockNotAvailable or PostgresErrorCodes.SerializationFailure)
        {
            return new TransactionalReservationResult(ReservationOutcome.InProgress, null);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.ProgramLimitExceeded)
        {
            throw IdTooLarge(id, ex);
        }
        catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.UndefinedTable or PostgresErrorCodes.InvalidSchemaName)
        {
            throw new InvalidOperationException(
                $"The database '{npgsql.Connection?.Database}' that the transaction is on has no idempotency records table {Schema.Table}. " +
                "One-commit reservation writes the record in the application's own transaction, so the records table must be in the same database: " +
                "point UsePostgreSql at the application's database (same data source or connection string), with the same Schema and TableName.",
                ex);
        }
        catch (Exception ex) when (PostgreSqlFailures.IsUnavailable(ex, cancellationToken))
        {
            throw PostgreSqlFailures.Unavailable("reserve a record inside the application's transaction", ex);
        }
    }
}
