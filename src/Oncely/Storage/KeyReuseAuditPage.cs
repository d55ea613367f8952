namespace Oncely;

/// <summary>One page of the key-reuse audit.</summary>
/// <param name="Entries">The entries, newest first.</param>
/// <param name="Continuation">Pass to <see cref="KeyReuseAuditQuery.Continuation"/> for the next page; <see langword="null"/> on the last page.</param>
public sealed record KeyReuseAuditPage(IReadOnlyList<KeyReuseAuditEntry> Entries, string? Continuation);
