namespace Oncely;

/// <summary>One page of records.</summary>
/// <param name="Records">The records, newest first.</param>
/// <param name="Continuation">Pass to <see cref="IdempotencyRecordQuery.Continuation"/> for the next page; <see langword="null"/> on the last page.</param>
public sealed record IdempotencyRecordPage(IReadOnlyList<IdempotencyRecordSummary> Records, string? Continuation);
