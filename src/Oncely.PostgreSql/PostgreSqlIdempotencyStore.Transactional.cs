using System.Data.Common;
using Npgsql;

namespace Oncely.PostgreSql;

/// <summary>
/// The writes made inside the application's own transaction (<see cref="ITransactionalIdempotencyStore"/>): the
/// one-commit reservation, the completion and the recovery point, so they commit or roll back with the business writes.
/// Each runs the store's own statement (<see cref="PostgreSqlStatements"/>) on the transaction's connection through one
/// shell (<see cref="InTransactionAsync"/>). Nothing is retried here: any failure has already aborted the transaction.
/// </summary>
/// <remarks>
/// One-commit reservation: first a plain insert, which settles the usual case (no row holds the key); when a row holds
/// it, the same statement as <see cref="TryReserveAsync(IdempotencyRecordId, string, TimeSpan, TimeSpan, CancellationToken)"/>
/// (insert, replace an expired record, or take over a same-fingerprint record whose lease expired, with a new fencing
/// token from the sequence), sent on the transaction's connection. Its uncommitted row holds the key's unique-index
/// entry: a concurrent duplicate's insert waits on this transaction (PostgreSQL's speculative-insertion wait), bounded
/// by <c>lock_timeout</c>, which is set for the reservation statement only and then put back, so the application's own
/// statements keep their setting. When this transaction commits, the waiting statement ends without inserting and the
/// next statement (a new snapshot, in READ COMMITTED) reads the committed record: the duplicate replays it. When this
/// transaction rolls back, the duplicate's insert goes through and it executes; the rolled-back reservation's token is
/// not handed out again (a sequence does not roll back).
/// </remarks>
internal sealed partial class PostgreSqlIdempotencyStore
{
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
        return await InTransactionAsync(
            npgsql,
            "One-commit reservation",
            "reserve a record inside the application's transaction",
            (store: this, npgsql, id, fingerprint, lease, expiration, lockTimeout),
            static (s, ct) => s.store.ReserveInTransactionAsync(s.npgsql, s.id, s.fingerprint, s.lease, s.expiration, s.lockTimeout, ct),
            cancellationToken).ConfigureAwait(false);
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
        return await FencedInTransactionAsync("complete a record inside the application's transaction", _statements.Complete(id, fencingToken, response, expiration, AsNpgsqlTransaction(transaction)), cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>
    /// One round trip: the completion and <c>COMMIT</c> go to the server as one batch. A completion that finds the record
    /// no longer held by <paramref name="fencingToken"/> fails inside the batch, so the <c>COMMIT</c> does not run and
    /// the transaction is left aborted for the caller to roll back (or dispose); the answer is then <see langword="false"/>.
    /// </remarks>
    public async ValueTask<bool> TryCompleteAndCommitAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(response);
        var npgsql = AsNpgsqlTransaction(transaction);
        var database = npgsql.Connection?.Database;
        var committed = await InTransactionAsync(
            npgsql,
            "Transactional completion",
            "complete a record and commit the application's transaction",
            (statements: _statements, batch: _statements.CompleteAndCommit(id, fencingToken, response, expiration, npgsql)),
            static (s, ct) => s.statements.CompleteAndCommitAsync(s.batch, ct),
            cancellationToken).ConfigureAwait(false);
        if (!committed)
        {
            ThrowIfOtherDatabase(database);
        }

        return committed;
    }

    /// <inheritdoc />
    /// <remarks>Runs on <paramref name="transaction"/>'s connection, inside it, with the server's clock.</remarks>
    public async ValueTask<bool> TrySetRecoveryPointAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentException.ThrowIfNullOrEmpty(recoveryPoint);
        return await FencedInTransactionAsync("set a recovery point inside the application's transaction", _statements.SetRecoveryPoint(id, fencingToken, recoveryPoint, lease, AsNpgsqlTransaction(transaction)), cancellationToken).ConfigureAwait(false);
    }

    private static NpgsqlTransaction AsNpgsqlTransaction(DbTransaction transaction)
        => transaction as NpgsqlTransaction
            ?? throw new InvalidOperationException(
                $"The PostgreSQL idempotency store received a {transaction.GetType().FullName}, but it can only write inside an Npgsql.NpgsqlTransaction " +
                "on the store's database. Begin the transaction on an NpgsqlConnection to the database UsePostgreSql points at (or use the store of the database the transaction is on).");

    /// <summary>The one-commit reservation's statement, run again while its snapshot cannot settle it; a lock wait that ran out answers InProgress.</summary>
    private async ValueTask<TransactionalReservationResult> ReserveInTransactionAsync(NpgsqlTransaction transaction, IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        try
        {
            // First the plain insert, which settles the usual case (no record holds the key) at the lowest cost; when a
            // row holds the key it answers nothing and the full reservation decides, as many times as its snapshot needs.
            var fresh = _statements.Reserve(transaction, id, fingerprint, lease, expiration, lockTimeout, freshOnly: true);
            if (await _statements.ReadReservationAsync(fresh, id, fingerprint, cancellationToken).ConfigureAwait(false) is { } inserted)
            {
                return new TransactionalReservationResult(inserted.Outcome, inserted.Record);
            }

            for (var attempt = 1; attempt <= MaxReserveAttempts; attempt++)
            {
                var command = _statements.Reserve(transaction, id, fingerprint, lease, expiration, lockTimeout);
                if (await _statements.ReadReservationAsync(command, id, fingerprint, cancellationToken).ConfigureAwait(false) is { } settled)
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
    }

    /// <summary>
    /// The shell of every write inside the application's transaction: runs <paramref name="work"/> and maps failures (<paramref name="feature"/> names what needs the records table): a
    /// missing records table is a configuration error (<see cref="InvalidOperationException"/>), a driver failure
    /// <see cref="IdempotencyStoreUnavailableException"/>. Other PostgreSQL errors reach the caller's handler as they are.
    /// </summary>
    private async ValueTask<T> InTransactionAsync<TState, T>(NpgsqlTransaction transaction, string feature, string operation, TState state, Func<TState, CancellationToken, ValueTask<T>> work, CancellationToken cancellationToken)
    {
        try
        {
            return await work(state, cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.UndefinedTable or PostgresErrorCodes.InvalidSchemaName)
        {
            throw new InvalidOperationException(
                $"The database '{transaction.Connection?.Database}' that the transaction is on has no idempotency records table {Schema.Table}. " +
                $"{feature} writes the record in the application's own transaction, so the records table must be in the same database: " +
                "point UsePostgreSql at the application's database (same data source or connection string), with the same Schema and TableName.",
                e);
        }
        catch (Exception e) when (PostgreSqlFailures.IsUnavailable(e, cancellationToken))
        {
            throw PostgreSqlFailures.Unavailable(operation, e);
        }
    }

    /// <summary>A fenced write (completion, recovery point) inside the application's transaction, through the shell.</summary>
    private ValueTask<bool> FencedInTransactionAsync(string operation, NpgsqlCommand command, CancellationToken cancellationToken)
        => InTransactionAsync(
            command.Transaction!,
            "Transactional completion",
            operation,
            (store: this, command),
            static (s, ct) => s.store.ChangedOneInTransactionAsync(s.command, ct),
            cancellationToken);

    /// <summary>
    /// Runs one fenced statement in the caller's transaction. When it changes no row, checks why: a transaction on another
    /// database that happens to have the table too is a configuration mistake, reported as such rather than as a lost lease.
    /// </summary>
    private async ValueTask<bool> ChangedOneInTransactionAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        var transactionDatabase = command.Connection?.Database;
        if (await _statements.ChangedOneAsync(command, cancellationToken).ConfigureAwait(false))
        {
            return true;
        }

        ThrowIfOtherDatabase(transactionDatabase);
        return false;
    }

    // A fenced write that changed no row on a transaction of another database that happens to have the table too: a
    // configuration mistake, reported as such rather than as a lost lease.
    private void ThrowIfOtherDatabase(string? transactionDatabase)
    {
        if (_storeDatabase is not null && transactionDatabase is not null && !string.Equals(_storeDatabase, transactionDatabase, StringComparison.Ordinal))
        {
            throw new InvalidOperationException(
                $"The transaction is on the database '{transactionDatabase}', but the idempotency records are in '{_storeDatabase}'. " +
                "Transactional completion writes the record in the application's own transaction, so the records table must be in the same database: " +
                "point UsePostgreSql at the application's database (same data source or connection string).");
        }
    }
}
