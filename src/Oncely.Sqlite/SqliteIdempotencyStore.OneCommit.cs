using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace Oncely.Sqlite;

/// <summary>
/// One-commit mode: the reservation runs inside the application's transaction, so the reservation, the business writes
/// and the completion commit once.
/// </summary>
/// <remarks>
/// SQLite has one writer at a time. A write transaction (<c>BEGIN IMMEDIATE</c>, or a deferred one from its first
/// write) holds the database's write lock until it ends, so a concurrent duplicate waits for it (the connection's
/// <c>busy_timeout</c>) before its own reservation runs, and then sees the committed record (replay) or nothing (the
/// first one rolled back: it executes). The reservation itself is the same upsert as the autocommit one; inside the
/// transaction nothing can change between it and the read that reports a held key.
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
                return IsBusy(sqlite);
            }
        }

        return false;
    }

    /// <inheritdoc />
    /// <remarks>
    /// Runs on <paramref name="transaction"/>'s connection, inside it; the records table must be in that connection's
    /// main database (the schema is not created from here: create it at start, as <c>UseSqlite</c> does). The wait for
    /// another writer is the connection's busy timeout, not <paramref name="lockTimeout"/>; when it runs out the
    /// reservation is reported as <see cref="ReservationOutcome.InProgress"/>.
    /// </remarks>
    public async ValueTask<TransactionalReservationResult> TryReserveAsync(DbTransaction transaction, IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(fingerprint);
        var sqlite = AsSqliteTransaction(transaction);
        var connection = TransactionConnection(sqlite);
        var now = NowMilliseconds();
        try
        {
            if (await UpsertAsync(connection, id, fingerprint, lease, expiration, now, cancellationToken, sqlite).ConfigureAwait(false) is { } reserved)
            {
                return new TransactionalReservationResult(reserved.Outcome, reserved.Record);
            }

            // A live row the caller may not take. Inside the write transaction it cannot change before this read.
            var existing = await ReadLiveAsync(connection, id, now, cancellationToken, sqlite).ConfigureAwait(false);
            if (existing is null)
            {
                return new TransactionalReservationResult(ReservationOutcome.InProgress, null);
            }

            var held = !string.Equals(existing.Fingerprint, fingerprint, StringComparison.Ordinal) ? ReservationOutcome.FingerprintMismatch
                : existing.State == IdempotencyRecordState.Completed ? ReservationOutcome.Completed
                : ReservationOutcome.InProgress;
            return new TransactionalReservationResult(held, existing);
        }
        catch (SqliteException e) when ((e.SqliteErrorCode & 0xFF) == SqliteError && e.Message.Contains("no such table", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidOperationException(MissingTableMessage(connection), e);
        }
        catch (SqliteException e) when (IsBusy(e))
        {
            // Another writer held the database past the busy timeout: still running elsewhere.
            return new TransactionalReservationResult(ReservationOutcome.InProgress, null);
        }
        catch (SqliteException e)
        {
            throw new IdempotencyStoreUnavailableException($"The SQLite idempotency store could not reserve a record inside the application's transaction: {e.Message}", e);
        }
    }
}
