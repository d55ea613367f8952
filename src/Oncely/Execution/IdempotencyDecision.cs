namespace Oncely;

/// <summary>What the engine decided for one attempt of an operation.</summary>
public enum IdempotencyDecisionKind
{
    /// <summary>This attempt holds the lease and must run the operation (a new key, or a take-over).</summary>
    Execute = 0,

    /// <summary>The operation completed earlier: answer with <see cref="IdempotencyDecision.Record"/>'s stored response.</summary>
    Replay = 1,

    /// <summary>Another attempt holds a valid lease: refuse (HTTP <c>409</c>) or try later.</summary>
    InProgress = 2,

    /// <summary>The key was used before for a different payload: refuse (HTTP <c>422</c> by default).</summary>
    KeyReused = 3,

    /// <summary>The store could not be reached in time: fail closed (HTTP <c>503</c>); nothing runs.</summary>
    StoreUnavailable = 4,
}

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

/// <summary>How writing a completion ended.</summary>
public enum CompletionOutcome
{
    /// <summary>The response is stored; retries replay it.</summary>
    Completed = 0,

    /// <summary>
    /// The store refused the fencing token: the lease expired and another attempt took the record over. The stale
    /// attempt's answer is not stored.
    /// </summary>
    LeaseLost = 1,

    /// <summary>
    /// The store failed on every retry (row 17). The record stays InProgress until its lease expires; it is not released.
    /// </summary>
    StoreFailed = 2,

    /// <summary>The completion was already written by the operation's own transaction (transactional completion).</summary>
    CompletedInTransaction = 3,

    /// <summary>
    /// One-commit mode: the reservation made inside the operation's transaction was rolled back with it, so there is
    /// no record to complete and the answer is not stored; a retry runs the operation again (nothing of it committed).
    /// </summary>
    NotRecorded = 4,
}
