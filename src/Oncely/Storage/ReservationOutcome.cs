namespace Oncely;

/// <summary>What an atomic reservation found.</summary>
public enum ReservationOutcome
{
    /// <summary>No live record existed: a new InProgress record was inserted and this caller holds its lease.</summary>
    Acquired = 0,

    /// <summary>
    /// An InProgress record with the same fingerprint had an expired lease: this caller took it over with a new
    /// fencing token and should resume at <see cref="IdempotencyRecord.RecoveryPoint"/>.
    /// </summary>
    TakenOver = 1,

    /// <summary>A Completed record with the same fingerprint exists: replay its response.</summary>
    Completed = 2,

    /// <summary>An InProgress record with the same fingerprint holds a valid lease: another execution is running.</summary>
    InProgress = 3,

    /// <summary>A live record exists with a different fingerprint: the key was reused for another payload. The record is untouched.</summary>
    FingerprintMismatch = 4,
}
