using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace Oncely.Sqlite;

/// <summary>
/// The writes made inside the application's own transaction (<see cref="ITransactionalIdempotencyStore"/>): the
/// one-commit reservation, the completion and the recovery point, so they commit or roll back with the business writes.
/// </summary>
/// <remarks>
/// <para>
/// Each runs one of the store's own statements (<see cref="SqliteStatements"/>) on the transaction's connection, through
/// one shell (<see cref="InTransactionAsync"/>): the transaction checked, the statement run, a missing records table
/// reported as a configuration error. Nothing is retried here: a failure is the caller's to roll back. The schema is not
/// created from here: create it at start, as <c>UseSqlite</c> does.
/// </para>
/// <para>
/// SQLite has one writer at a time. A write transaction (<c>BEGIN IMMEDIATE</c>, or a deferred one from its first
/// write) holds the database's write lock until it ends, so a concurrent duplicate waits for it (the connection's
/// <c>busy_timeout</c>) before its own reservation runs, and then sees the committed record (replay) or nothing (the
/// first one rolled back: it executes). The reservation itself is the same upsert as the autocommit one; inside the
/// transaction nothing can change between it and the read that reports a held key.
/// </para>
/// </remarks>
internal sealed partial class SqliteIdempotencyStore
{
    /// <inheritdoc />
    /// <remarks>
    /// SQLite's transient failures: the database was busy (another writer held it past the busy timeout,
    /// <c>SQLITE_BUSY</c>) or a table was locked (<c>SQLITE_LOCKED</c>). The first <see cref="SqliteException"/> found
    /// decides; any other SQLite error (a constraint violation, a syntax error, a full disk) is the operation's own.
    /// </remarks>
    public bool IsTransientFailure(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (current is SqliteException sqlite)
            {
                return SqliteDatabase.IsBusy(sqlite);
            }
        }

        return false;
    }

    /// <inheritdoc />
    /// <remarks>
    /// Runs on <paramref name="transaction"/>'s connection, inside it; the records table must be in that connection's
    /// main database. The wait for another writer is the connection's busy timeout, not <paramref name="lockTimeout"/>;
    /// when it runs out the reservation is reported as <see cref="ReservationOutcome.InProgress"/>.
    /// </remarks>
    public async ValueTask<TransactionalReservationResult> TryReserveAsync(DbTransaction transaction, IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(fingerprint);
        try
        {
            return await InTransactionAsync(
                transaction,
                "reserve a record",
                (id, fingerprint, lease, expiration),
                static async (store, connection, sqlite, s, ct) =>
                {
                    var now = store.Now();
                    var upsert = store._statements.Reserve(connection, sqlite, s.id, s.fingerprint, s.lease, s.expiration, now);
                    if (await SqliteStatements.ReadReservationAsync(upsert, s.id, s.fingerprint, ct).ConfigureAwait(false) is { } reserved)
                    {
                        return new TransactionalReservationResult(reserved.Outcome, reserved.Record);
                    }

                    // A live row the caller may not take. Inside the write transaction it cannot change before this read.
                    var existing = await SqliteStatements.ReadRecordAsync(store._statements.ReadLive(connection, sqlite, s.id, now), s.id, ct).ConfigureAwait(false);
                    if (existing is null)
                    {
                        return new TransactionalReservationResult(ReservationOutcome.InProgress, null);
                    }

                    var held = !string.Equals(existing.Fingerprint, s.fingerprint, StringComparison.Ordinal) ? ReservationOutcome.FingerprintMismatch
                        : existing.State == IdempotencyRecordState.Completed ? ReservationOutcome.Completed
                        : ReservationOutcome.InProgress;
                    return new TransactionalReservationResult(held, existing);
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (IdempotencyStoreUnavailableException e) when (e.InnerException is SqliteException sqlite && SqliteDatabase.IsBusy(sqlite))
        {
            // Another writer held the database past the busy timeout: still running elsewhere.
            return new TransactionalReservationResult(ReservationOutcome.InProgress, null);
        }
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
        return await FencedInTransactionAsync(transaction, "complete the record", (id, fencingToken, response, expiration), static (sql, c, tx, s, now) => sql.Complete(c, tx, s.id, s.fencingToken, s.response, s.expiration, now), cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>Runs on <paramref name="transaction"/>'s connection, inside it; see <see cref="TryCompleteAsync(DbTransaction, IdempotencyRecordId, long, IdempotentResponse, TimeSpan, CancellationToken)"/>.</remarks>
    public async ValueTask<bool> TrySetRecoveryPointAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentException.ThrowIfNullOrEmpty(recoveryPoint);
        return await FencedInTransactionAsync(transaction, "set the recovery point", (id, fencingToken, recoveryPoint, lease), static (sql, c, tx, s, now) => sql.SetRecoveryPoint(c, tx, s.id, s.fencingToken, s.recoveryPoint, s.lease, now), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The shell of every write inside the application's transaction: checks that it is a live
    /// <see cref="SqliteTransaction"/>, runs <paramref name="work"/> on its connection, and maps failures: a missing
    /// records table is a configuration error (<see cref="InvalidOperationException"/>), any other SQLite error
    /// <see cref="IdempotencyStoreUnavailableException"/>.
    /// </summary>
    private async ValueTask<T> InTransactionAsync<TState, T>(DbTransaction transaction, string operation, TState state, Func<SqliteIdempotencyStore, SqliteConnection, SqliteTransaction, TState, CancellationToken, ValueTask<T>> work, CancellationToken cancellationToken)
    {
        var sqlite = transaction as SqliteTransaction
            ?? throw new InvalidOperationException(
                $"The SQLite idempotency store received a {transaction.GetType().FullName}, but it can only write inside a Microsoft.Data.Sqlite.SqliteTransaction " +
                "on the store's database. Begin the transaction on a SqliteConnection to the database UseSqlite points at (or use the store of the database the transaction is on).");
        var connection = sqlite.Connection
            ?? throw new InvalidOperationException("The SqliteTransaction has already been committed or rolled back; complete the idempotency record before committing.");
        try
        {
            return await work(this, connection, sqlite, state, cancellationToken).ConfigureAwait(false);
        }
        catch (SqliteException e) when (SqliteDatabase.IsMissingTable(e))
        {
            throw new InvalidOperationException(
                $"The SQLite database '{connection.DataSource}' that the transaction is on has no idempotency records table \"{_table}\". " +
                $"Transactional completion writes the record in the application's own transaction, so the records table must be in the same database: " +
                $"point UseSqlite at the application's database (the store uses '{_database.DataSource}').",
                e);
        }
        catch (SqliteException e)
        {
            throw new IdempotencyStoreUnavailableException($"The SQLite idempotency store could not {operation} inside the application's transaction: {e.Message}", e);
        }
    }

    /// <summary>A fenced write (completion, recovery point) inside the application's transaction, through the shell.</summary>
    private ValueTask<bool> FencedInTransactionAsync<TState>(DbTransaction transaction, string operation, TState state, Func<SqliteStatements, SqliteConnection, SqliteTransaction, TState, long, SqliteCommand> statement, CancellationToken cancellationToken)
        => InTransactionAsync(
            transaction,
            operation,
            (state, statement),
            static (store, connection, sqlite, s, ct) => store.ChangedOneInTransactionAsync(s.statement(store._statements, connection, sqlite, s.state, store.Now()), connection, ct),
            cancellationToken);

    /// <summary>
    /// Runs one guarded statement in the caller's transaction. When it changes no row, checks why: a transaction on
    /// another database file than the store's is a configuration error (<see cref="InvalidOperationException"/>), not
    /// a lost lease.
    /// </summary>
    private async ValueTask<bool> ChangedOneInTransactionAsync(SqliteCommand command, SqliteConnection connection, CancellationToken cancellationToken)
    {
        if (await SqliteStatements.ChangedOneAsync(command, cancellationToken).ConfigureAwait(false))
        {
            return true;
        }

        if (!_database.IsSameDatabase(connection))
        {
            throw new InvalidOperationException(
                $"The transaction is on the SQLite database '{connection.DataSource}', but the idempotency records are in '{_database.DataSource}'. " +
                "Transactional completion writes the record in the application's own transaction, so the records table must be in the same database: " +
                "open the transaction on the store's database (or point UseSqlite at the application's database).");
        }

        return false;
    }
}
