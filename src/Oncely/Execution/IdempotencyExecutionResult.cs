namespace Oncely;

/// <summary>What <see cref="IdempotencyExecutor.ExecuteAsync"/> did.</summary>
/// <param name="Kind"><see cref="IdempotencyDecisionKind.Execute"/> when the operation ran now; otherwise why it did not.</param>
/// <param name="Response">The fresh result, or the stored one for <see cref="IdempotencyDecisionKind.Replay"/>.</param>
/// <param name="Completion">How storing the fresh result ended, when the operation ran.</param>
public readonly record struct IdempotencyExecutionResult(IdempotencyDecisionKind Kind, IdempotentResponse? Response, CompletionOutcome? Completion);
