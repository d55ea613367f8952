namespace Oncely;

/// <summary>The result of <see cref="IIdempotencyStore.TryReserveAsync"/>: the outcome and the record as it stands after the operation.</summary>
/// <param name="Outcome">What the reservation found.</param>
/// <param name="Record">The record after the atomic operation (the caller's own record when acquired or taken over).</param>
public readonly record struct ReservationResult(ReservationOutcome Outcome, IdempotencyRecord Record)
{
    /// <summary><see langword="true"/> when this caller now holds the lease and must execute.</summary>
    public bool MustExecute => Outcome is ReservationOutcome.Acquired or ReservationOutcome.TakenOver;
}
