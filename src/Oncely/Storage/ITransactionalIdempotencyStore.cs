using System.Data.Common;

namespace Oncely;

/// <summary>
/// Optional capability: a SQL store that can make its transitions part of the application's own transaction
/// (transactional completion), so a business write and the record's completion commit together or not at all.
/// </summary>
/// <remarks>
/// The transaction is passed as its ADO.NET base type and the store checks its runtime type: a store accepts its own
/// driver's transactions (<c>SqliteTransaction</c> for the SQLite store, <c>NpgsqlTransaction</c> for the PostgreSQL
/// store) and throws <see cref="InvalidOperationException"/>, naming the type it received and the type it needs, for any
/// other. So <c>await using var tx = await connection.BeginTransactionAsync()</c> (static type <see cref="DbTransaction"/>)
/// works as it is.
/// </remarks>
public interface ITransactionalIdempotencyStore
{
    /// <summary>
    /// Inside <paramref name="transaction"/>: stores the response and marks the record Completed, only if it is
    /// InProgress with <paramref name="fencingToken"/>. Returns <see langword="false"/> (the caller rolls back) when the
    /// token is stale. Nothing is visible to others until the transaction commits.
    /// </summary>
    /// <param name="transaction">The application's open transaction on the store's database, of the store's driver.</param>
    /// <param name="id">The record.</param>
    /// <param name="fencingToken">The caller's token.</param>
    /// <param name="response">The answer to store.</param>
    /// <param name="expiration">How long the Completed record lives from now (store clock).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="InvalidOperationException"><paramref name="transaction"/> is not of the store's driver, or not on the store's database.</exception>
    ValueTask<bool> TryCompleteAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken);

    /// <summary>
    /// <see cref="TryCompleteAsync(DbTransaction, IdempotencyRecordId, long, IdempotentResponse, TimeSpan, CancellationToken)"/>,
    /// then commits <paramref name="transaction"/> when the completion was written. A store may send both in one round
    /// trip (the PostgreSQL store does); the default makes the two calls. Returns <see langword="false"/> without
    /// committing when the token is stale: the caller rolls back. When it throws, whether the transaction committed is
    /// not known (as with any failed commit).
    /// </summary>
    /// <param name="transaction">The application's open transaction on the store's database, of the store's driver.</param>
    /// <param name="id">The record.</param>
    /// <param name="fencingToken">The caller's token.</param>
    /// <param name="response">The answer to store.</param>
    /// <param name="expiration">How long the Completed record lives from now (store clock).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns><see langword="true"/> when the completion and the transaction committed.</returns>
    /// <exception cref="InvalidOperationException"><paramref name="transaction"/> is not of the store's driver, or not on the store's database.</exception>
    async ValueTask<bool> TryCompleteAndCommitAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        if (!await TryCompleteAsync(transaction, id, fencingToken, response, expiration, cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <summary>
    /// Inside <paramref name="transaction"/>: records the committed phase and renews the lease, only if the record is
    /// InProgress with <paramref name="fencingToken"/>; otherwise returns <see langword="false"/>.
    /// </summary>
    /// <param name="transaction">The application's open transaction on the store's database, of the store's driver.</param>
    /// <param name="id">The record.</param>
    /// <param name="fencingToken">The caller's token.</param>
    /// <param name="recoveryPoint">The phase name.</param>
    /// <param name="lease">The renewed lease, from now (store clock).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="InvalidOperationException"><paramref name="transaction"/> is not of the store's driver, or not on the store's database.</exception>
    ValueTask<bool> TrySetRecoveryPointAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken);

    /// <summary>
    /// One-commit mode. Inside <paramref name="transaction"/>: reserves <paramref name="id"/> exactly as
    /// <see cref="IIdempotencyStore.TryReserveAsync"/> does (a new InProgress record with a new fencing token; an expired
    /// record replaced; a same-fingerprint InProgress record whose lease expired taken over, fenced), but the new record
    /// is visible to nobody until the transaction commits, and vanishes if it rolls back. A concurrent transaction that
    /// holds the same key uncommitted is waited for, at most <paramref name="lockTimeout"/>: when it commits, its record is
    /// reported (Completed: replay; other fingerprint: mismatch); when it rolls back, this reservation proceeds.
    /// </summary>
    /// <param name="transaction">The application's open transaction on the store's database, of the store's driver. Call it as the transaction's first statement.</param>
    /// <param name="id">The record to reserve.</param>
    /// <param name="fingerprint">The request fingerprint (lowercase hex SHA-256).</param>
    /// <param name="lease">How long the new holder's lease lasts from now (store clock); it only matters if the transaction commits the reservation without completing it.</param>
    /// <param name="expiration">How long the record lives from now (store clock).</param>
    /// <param name="lockTimeout">
    /// The longest wait on another transaction that holds the key. When it runs out the store reports
    /// <see cref="ReservationOutcome.InProgress"/> (the caller's transaction is then unusable and must be rolled back).
    /// Stores whose writers are serialised before the transaction's first statement (SQLite) may ignore it.
    /// </param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>
    /// The outcome and the record. Only <see cref="ReservationOutcome.Acquired"/> and <see cref="ReservationOutcome.TakenOver"/>
    /// let the caller go on; for the others the caller rolls back. The record can be <see langword="null"/> when the
    /// store cannot read the conflicting row inside this transaction (for example under REPEATABLE READ, where a row
    /// committed after the transaction's snapshot is invisible): the caller reads it after rolling back.
    /// </returns>
    /// <exception cref="InvalidOperationException"><paramref name="transaction"/> is not of the store's driver, or not on the store's database.</exception>
    ValueTask<TransactionalReservationResult> TryReserveAsync(DbTransaction transaction, IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, TimeSpan lockTimeout, CancellationToken cancellationToken)
        => throw new InvalidOperationException(
            $"The idempotency store {GetType().Name} cannot reserve inside a transaction, so it does not support one-commit endpoints. " +
            "Use the SQLite or PostgreSQL store on the application's database, or remove WithOneCommitReservation / OneCommitReservation from the endpoint.");

    /// <summary>
    /// One-commit mode. Inside <paramref name="batch"/>'s transaction: reserves <paramref name="id"/> as
    /// <see cref="TryReserveAsync"/> does and runs <paramref name="batch"/>, the transaction's first statements, in as
    /// few round trips as the driver allows (PostgreSQL: one, the reservation sent in front of the batch's commands).
    /// The batch's commands may run before the reservation's answer is known; when the answer does not let the caller
    /// go on, the caller rolls the transaction back, so nothing of them commits. The default reserves, then executes
    /// the batch when the reservation lets the caller go on.
    /// </summary>
    /// <param name="batch">The transaction's first statements, with <see cref="DbBatch.Transaction"/> set; left as given.</param>
    /// <param name="id">The record to reserve.</param>
    /// <param name="fingerprint">The request fingerprint (lowercase hex SHA-256).</param>
    /// <param name="lease">As for <see cref="TryReserveAsync"/>.</param>
    /// <param name="expiration">As for <see cref="TryReserveAsync"/>.</param>
    /// <param name="lockTimeout">As for <see cref="TryReserveAsync"/>; it bounds the reservation's wait only, not the batch's statements.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>
    /// The reservation's answer, as for <see cref="TryReserveAsync"/>, and the rows the batch's commands changed (0 when
    /// the reservation does not let the caller go on). A command of the batch that failed after the store learned the key
    /// is held is reported as <see cref="ReservationOutcome.InProgress"/> without a record (the caller reads it after
    /// rolling back); a command that failed while the reservation holds the key throws its own error.
    /// </returns>
    /// <exception cref="InvalidOperationException"><paramref name="batch"/> has no transaction, or it is not of the store's driver or database.</exception>
    async ValueTask<TransactionalBatchReservationResult> TryReserveAndExecuteAsync(DbBatch batch, IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var transaction = batch.Transaction ?? throw new InvalidOperationException("The batch has no transaction: set DbBatch.Transaction to the operation's open transaction.");
        var reservation = await TryReserveAsync(transaction, id, fingerprint, lease, expiration, lockTimeout, cancellationToken).ConfigureAwait(false);
        return reservation.MustExecute
            ? new TransactionalBatchReservationResult(reservation, await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false))
            : new TransactionalBatchReservationResult(reservation, 0);
    }

    /// <summary>
    /// One-commit mode: whether <paramref name="exception"/>, which ended an operation while its transaction on this
    /// store's database was open, is a transient failure of that database, as this store's driver reports it: the
    /// connection was lost or refused, the server is shutting down or restarting, a serialization failure, a deadlock,
    /// a lock wait that ran out (SQLite: the database was busy or locked). Such a transaction committed nothing (or, when
    /// the connection was lost during its <c>COMMIT</c>, committed its effect with its stored answer, which a retry
    /// replays), so the caller answers as it does for an unreachable store (<c>503</c> with <c>Retry-After</c>) and the
    /// client's retry runs the operation once.
    /// </summary>
    /// <param name="exception">What the operation threw; the store looks through its inner exceptions for its driver's.</param>
    /// <returns>
    /// <see langword="true"/> only for the driver's transient failures; <see langword="false"/> for anything else: an
    /// error in the operation's own statements (a constraint violation, a syntax error), a cancellation, an exception of
    /// another library. Defaults to <see langword="false"/>.
    /// </returns>
    bool IsTransientFailure(Exception exception) => false;
}
