namespace Oncely;

/// <summary>The result of <see cref="ITransactionalIdempotencyStore.TryReserveAsync"/> (one-commit mode).</summary>
/// <param name="Outcome">What the reservation found.</param>
/// <param name="Record">
/// The record as this transaction sees it after the reservation (its own record when acquired or taken over), or
/// <see langword="null"/> when the conflicting row could not be read inside the transaction.
/// </param>
public readonly record struct TransactionalReservationResult(ReservationOutcome Outcome, IdempotencyRecord? Record)
{
    /// <summary><see langword="true"/> when this transaction now holds the record and must execute.</summary>
    public bool MustExecute => Outcome is ReservationOutcome.Acquired or ReservationOutcome.TakenOver;
}

/// <summary>The result of <see cref="ITransactionalIdempotencyStore.TryReserveAndExecuteAsync"/> (one-commit mode).</summary>
/// <param name="Reservation">The reservation's answer.</param>
/// <param name="RecordsAffected">The rows the batch's commands changed; 0 when the reservation does not let the caller go on.</param>
public readonly record struct TransactionalBatchReservationResult(TransactionalReservationResult Reservation, int RecordsAffected);
