namespace Oncely;

/// <summary>What one erasure (<see cref="IIdempotencyStoreErasure"/>) erased, and what it kept.</summary>
/// <param name="RecordsErased">Records deleted: Completed ones with their stored answers, and expired ones not yet purged.</param>
/// <param name="AuditEntriesErased">Key-reuse audit entries deleted, with their payloads.</param>
/// <param name="InProgress">
/// The unexpired InProgress records of the scope, kept because their operations may still be running (newest first).
/// Empty when the erasure is complete.
/// </param>
public sealed record IdempotencyErasureResult(int RecordsErased, int AuditEntriesErased, IReadOnlyList<IdempotencyRecordSummary> InProgress)
{
    /// <summary>Whether nothing of the scope is left: no record was kept because it was in progress.</summary>
    public bool IsComplete => InProgress.Count == 0;

    /// <summary>Whether the store held nothing at all for the scope (nothing erased, nothing in progress).</summary>
    public bool FoundNothing => RecordsErased == 0 && AuditEntriesErased == 0 && InProgress.Count == 0;
}
