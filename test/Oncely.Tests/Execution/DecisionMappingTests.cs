namespace Oncely.Tests.Execution;

/// <summary>
/// <see cref="DecisionMapping"/>, the one place where a store's answer becomes a decision: every reservation outcome and
/// every kind of record read back, against the decision table's rows.
/// </summary>
public class DecisionMappingTests
{
    private static readonly IdempotencyRecordId Id = new("tenant-1", "POST /payments", "key-1");
    private static readonly IdempotentResponse Answer = new(201, [], "{}"u8.ToArray());

    [Theory]
    [InlineData(ReservationOutcome.Acquired, IdempotencyDecisionKind.Execute)]
    [InlineData(ReservationOutcome.TakenOver, IdempotencyDecisionKind.Execute)]
    [InlineData(ReservationOutcome.Completed, IdempotencyDecisionKind.Replay)]
    [InlineData(ReservationOutcome.FingerprintMismatch, IdempotencyDecisionKind.KeyReused)]
    [InlineData(ReservationOutcome.InProgress, IdempotencyDecisionKind.InProgress)]
    [InlineData((ReservationOutcome)99, IdempotencyDecisionKind.InProgress)]
    public void FromReservation_EachOutcome_ItsDecisionRow(ReservationOutcome outcome, IdempotencyDecisionKind expected)
        => Assert.Equal(expected, DecisionMapping.FromReservation(outcome));

    [Theory]
    [InlineData(ReservationOutcome.Acquired, IdempotencyDecisionKind.InProgress)]
    [InlineData(ReservationOutcome.TakenOver, IdempotencyDecisionKind.InProgress)]
    [InlineData(ReservationOutcome.Completed, IdempotencyDecisionKind.Replay)]
    [InlineData(ReservationOutcome.FingerprintMismatch, IdempotencyDecisionKind.KeyReused)]
    [InlineData(ReservationOutcome.InProgress, IdempotencyDecisionKind.InProgress)]
    public void FromRefusedReservation_EachOutcome_NeverExecute(ReservationOutcome outcome, IdempotencyDecisionKind expected)
        => Assert.Equal(expected, DecisionMapping.FromRefusedReservation(outcome));

    [Fact]
    public void FromRecord_NoRecord_NotSettled()
        => Assert.Null(DecisionMapping.FromRecord(null, "fp"));

    [Theory]
    [InlineData(IdempotencyRecordState.InProgress)]
    [InlineData(IdempotencyRecordState.Completed)]
    public void FromRecord_OtherFingerprintAnyState_KeyReused(IdempotencyRecordState state)
        => Assert.Equal(IdempotencyDecisionKind.KeyReused, DecisionMapping.FromRecord(Record(state, "fp-other", Answer), "fp"));

    [Fact]
    public void FromRecord_CompletedWithAnswer_Replay()
        => Assert.Equal(IdempotencyDecisionKind.Replay, DecisionMapping.FromRecord(Record(IdempotencyRecordState.Completed, "fp", Answer), "fp"));

    [Fact]
    public void FromRecord_SameFingerprintStillHeld_NotSettled()
        => Assert.Null(DecisionMapping.FromRecord(Record(IdempotencyRecordState.InProgress, "fp", null), "fp"));

    [Fact]
    public void FromRecord_FingerprintDiffersOnlyInCase_KeyReused()
        => Assert.Equal(IdempotencyDecisionKind.KeyReused, DecisionMapping.FromRecord(Record(IdempotencyRecordState.Completed, "FP", Answer), "fp"));

    private static IdempotencyRecord Record(IdempotencyRecordState state, string fingerprint, IdempotentResponse? response)
        => new() { Id = Id, Fingerprint = fingerprint, State = state, FencingToken = 1, LeaseExpiresAt = DateTimeOffset.UnixEpoch, ExpiresAt = DateTimeOffset.UnixEpoch, Response = response };
}
