namespace Oncely;

/// <summary>
/// The one place where what the store answered becomes what the engine decides (decision-table rows 5 to 8 and 12):
/// from a reservation's outcome, and from a record read back (one-commit mode and its conflicts).
/// </summary>
internal static class DecisionMapping
{
    /// <summary>
    /// A reservation's answer: acquired (row 5) or taken over (row 12) executes, Completed replays (row 6), another
    /// fingerprint is a reused key (row 8), and anything else is held by a running attempt (row 7).
    /// </summary>
    public static IdempotencyDecisionKind FromReservation(ReservationOutcome outcome) => outcome switch
    {
        ReservationOutcome.Acquired or ReservationOutcome.TakenOver => IdempotencyDecisionKind.Execute,
        ReservationOutcome.Completed => IdempotencyDecisionKind.Replay,
        ReservationOutcome.FingerprintMismatch => IdempotencyDecisionKind.KeyReused,
        _ => IdempotencyDecisionKind.InProgress,
    };

    /// <summary>
    /// A reservation that did not acquire the key (one-commit mode, inside the operation's transaction): replay, reused
    /// key, or in progress; never <see cref="IdempotencyDecisionKind.Execute"/>.
    /// </summary>
    public static IdempotencyDecisionKind FromRefusedReservation(ReservationOutcome outcome)
        => FromReservation(outcome) is var kind && kind == IdempotencyDecisionKind.Execute ? IdempotencyDecisionKind.InProgress : kind;

    /// <summary>
    /// A record read back: another fingerprint is a reused key (row 8, whatever the state), a Completed record with its
    /// answer replays (row 6); <see langword="null"/> when the read does not settle it (no record, or one with this
    /// fingerprint still held), which each caller answers in its own way.
    /// </summary>
    public static IdempotencyDecisionKind? FromRecord(IdempotencyRecord? record, string fingerprint) => record switch
    {
        null => null,
        _ when !string.Equals(record.Fingerprint, fingerprint, StringComparison.Ordinal) => IdempotencyDecisionKind.KeyReused,
        { State: IdempotencyRecordState.Completed, Response: not null } => IdempotencyDecisionKind.Replay,
        _ => null,
    };
}
