namespace Oncely;

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
