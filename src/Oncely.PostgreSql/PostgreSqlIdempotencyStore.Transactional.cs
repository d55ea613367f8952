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
    /// One round trip for a new key: the reservation's plain insert goes to the server in front of <paramref name="batch"/>'s
    /// commands, as one <see cref="NpgsqlBatch"/>, and is taken out of the batch again afterwards. It is one call of the
    /// schema's function (migration 5), which sets <c>lock_timeout</c> for the insert and puts it back: the batch is the
    /// application's and is not prepared, and the call is cheap to parse while PL/pgSQL keeps the insert's plan. When a row already holds the key, the batch's commands have run by the time the store knows;
    /// it then sends the full reservation in the same transaction, as <see cref="TryReserveAsync(DbTransaction, IdempotencyRecordId, string, TimeSpan, TimeSpan, TimeSpan, CancellationToken)"/>
    /// does, and the caller rolls back unless that reservation lets it go on. The batch is not prepared (its statements
    /// are the application's); its <see cref="NpgsqlBatch.Timeout"/> is raised for the call, when finite, to cover the
    /// reservation's wait. An error of the application's own statements reaches the caller as it is, unless the store
    /// already knew the key was held (then the answer is InProgress without a record: roll back and read it).
    /// </remarks>
    public async ValueTask<TransactionalBatchReservationResult> TryReserveAndExecuteAsync(DbBatch batch, IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(fingerprint);
        var npgsqlBatch = batch as NpgsqlBatch
            ?? throw new InvalidOperationException(
                $"The PostgreSQL idempotency store received a {batch.GetType().FullName}, but it can only run an Npgsql.NpgsqlBatch with its reservation. " +
                "Create the batch on the NpgsqlConnection of the operation's transaction (new NpgsqlBatch(connection, transaction)).");
        var transaction = AsNpgsqlTransaction(npgsqlBatch.Transaction
            ?? throw new InvalidOperationException("The batch has no transaction: set NpgsqlBatch.Transaction to the operation's open transaction, so the reservation and the statements commit together."));
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await ReserveAndExecuteInTransactionAsync(npgsqlBatch, transaction, id, fingerprint, lease, expiration, lockTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (ApplicationStatementFailedException failed)
        {
            // The application's own statement failed while this transaction held the key: its error, as it is.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failed.InnerException!);
            throw;
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

    /// <summary>The one-commit reservation: the plain insert, then the full statement while a row holds the key; a lock wait that ran out answers InProgress.</summary>
    private async ValueTask<TransactionalReservationResult> ReserveInTransactionAsync(NpgsqlTransaction transaction, IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        try
        {
            // First the plain insert, which settles the usual case (no record holds the key) at the lowest cost; when a
            // row holds the key it answers nothing and the full reservation decides.
            var fresh = _statements.Reserve(transaction, id, fingerprint, lease, expiration, lockTimeout, freshOnly: true);
            if (await _statements.ReadReservationAsync(fresh, id, fingerprint, cancellationToken).ConfigureAwait(false) is { } inserted)
            {
                return new TransactionalReservationResult(inserted.Outcome, inserted.Record);
            }

            return await SettleHeldKeyAsync(transaction, id, fingerprint, lease, expiration, lockTimeout, cancellationToken).ConfigureAwait(false);
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

    /// <summary>A row holds the key: the full reservation, run again (a new snapshot each time) while its snapshot cannot settle it.</summary>
    private async ValueTask<TransactionalReservationResult> SettleHeldKeyAsync(NpgsqlTransaction transaction, IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
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

    /// <summary>
    /// <see cref="TryReserveAndExecuteAsync"/>'s work: the plain insert's three statements put in front of the
    /// application's batch, one round trip; then, only when a row held the key, the full reservation. The failures of the
    /// store's own statements are mapped as for <see cref="TryReserveAsync(DbTransaction, IdempotencyRecordId, string, TimeSpan, TimeSpan, TimeSpan, CancellationToken)"/>;
    /// those of the application's statements leave wrapped in <see cref="ApplicationStatementFailedException"/>, so no
    /// mapping meant for the store's statements touches them.
    /// </summary>
    private async ValueTask<TransactionalBatchReservationResult> ReserveAndExecuteInTransactionAsync(NpgsqlBatch batch, NpgsqlTransaction transaction, IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        // The reservation's plain insert, as one call, in front of the application's commands.
        var reserve = _statements.ReserveFreshCall(id, fingerprint, lease, expiration, lockTimeout);
        var commands = batch.BatchCommands;
        var timeout = batch.Timeout;
        var ownTimeout = _statements.ReservationTimeoutSeconds(lockTimeout);
        commands.Insert(0, reserve);
        if (timeout > 0 && timeout < ownTimeout)
        {
            batch.Timeout = ownTimeout;
        }

        // Which statement's result the reader is reaching for: a statement's error is raised there, when the reader
        // moves to its result (Npgsql reads the answers in order). 0 is the store's call; the application's follow.
        var reaching = 0;
        ReservationResult? inserted = null;
        var affected = 0;
        try
        {
            var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                // The call's answer: one row when it inserted, none when a row holds the key.
                if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    inserted = PostgreSqlStatements.Classify(reader, id, fingerprint);
                }

                reaching = 1;
                while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false))
                {
                    reaching++;
                }
            }

            // The rows the application's commands changed (its writes; a query's rows are not counted).
            for (var i = 1; i < commands.Count; i++)
            {
                if (commands[i] is { StatementType: not StatementType.Select, RecordsAffected: > 0 } command)
                {
                    affected += command.RecordsAffected;
                }
            }
        }
        catch (PostgresException ex) when (reaching >= 1)
        {
            if (inserted is null)
            {
                // A row held the key, and one of the application's statements failed after it (perhaps because of the
                // duplicate it belongs to): the transaction is aborted, so the caller rolls back and reads the record.
                return new TransactionalBatchReservationResult(new TransactionalReservationResult(ReservationOutcome.InProgress, null), 0);
            }

            throw new ApplicationStatementFailedException(ex);
        }
        catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.LockNotAvailable or PostgresErrorCodes.SerializationFailure)
        {
            return new TransactionalBatchReservationResult(new TransactionalReservationResult(ReservationOutcome.InProgress, null), 0);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.ProgramLimitExceeded)
        {
            throw IdTooLarge(id, ex);
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.UndefinedTable or PostgresErrorCodes.InvalidSchemaName)
        {
            throw MissingTable(transaction, "One-commit reservation", e);
        }
        catch (Exception e) when (PostgreSqlFailures.IsUnavailable(e, cancellationToken))
        {
            throw PostgreSqlFailures.Unavailable("reserve a record and run the transaction's first statements", e);
        }
        finally
        {
            // The application's batch as it was given.
            commands.RemoveAt(0);
            batch.Timeout = timeout;
        }

        if (inserted is { } fresh)
        {
            return new TransactionalBatchReservationResult(new TransactionalReservationResult(fresh.Outcome, fresh.Record), affected);
        }

        // A row held the key and the application's commands ran anyway (uncommitted): the full reservation decides, and
        // the caller rolls back unless it lets it go on.
        var settled = await InTransactionAsync(
            transaction,
            "One-commit reservation",
            "reserve a record inside the application's transaction",
            (store: this, transaction, id, fingerprint, lease, expiration, lockTimeout),
            static async (s, ct) =>
            {
                try
                {
                    return await s.store.SettleHeldKeyAsync(s.transaction, s.id, s.fingerprint, s.lease, s.expiration, s.lockTimeout, ct).ConfigureAwait(false);
                }
                catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.LockNotAvailable or PostgresErrorCodes.SerializationFailure)
                {
                    return new TransactionalReservationResult(ReservationOutcome.InProgress, null);
                }
            },
            cancellationToken).ConfigureAwait(false);
        return new TransactionalBatchReservationResult(settled, settled.MustExecute ? affected : 0);
    }

    /// <summary>Carries an error of the application's own statement past the store's failure mapping, to be thrown again as it is.</summary>
    private sealed class ApplicationStatementFailedException(PostgresException inner) : Exception(inner.Message, inner);

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
            throw MissingTable(transaction, feature, e);
        }
        catch (Exception e) when (PostgreSqlFailures.IsUnavailable(e, cancellationToken))
        {
            throw PostgreSqlFailures.Unavailable(operation, e);
        }
    }

    private InvalidOperationException MissingTable(NpgsqlTransaction transaction, string feature, PostgresException e)
        => new(
            $"The database '{transaction.Connection?.Database}' that the transaction is on has no idempotency records table {Schema.Table}. " +
            $"{feature} writes the record in the application's own transaction, so the records table must be in the same database: " +
            "point UsePostgreSql at the application's database (same data source or connection string), with the same Schema and TableName.",
            e);

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
