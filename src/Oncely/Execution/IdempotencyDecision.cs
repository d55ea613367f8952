namespace Oncely;

/// <summary>The engine's answer to <see cref="IdempotencyExecutor.BeginAsync"/>.</summary>
public sealed class IdempotencyDecision
{
    internal IdempotencyDecision(IdempotencyDecisionKind kind, IdempotencyRecord? record, IdempotencyExecution? execution, Exception? storeError)
    {
        Kind = kind;
        Record = record;
        Execution = execution;
        StoreError = storeError;
    }

    /// <summary>What to do.</summary>
    public IdempotencyDecisionKind Kind { get; }

    /// <summary>The record as the store returned it (absent for <see cref="IdempotencyDecisionKind.StoreUnavailable"/>).</summary>
    public IdempotencyRecord? Record { get; }

    /// <summary>The lease this attempt holds, for <see cref="IdempotencyDecisionKind.Execute"/>.</summary>
    public IdempotencyExecution? Execution { get; }

    /// <summary>Why the store was unavailable, for <see cref="IdempotencyDecisionKind.StoreUnavailable"/>.</summary>
    public Exception? StoreError { get; }
}
