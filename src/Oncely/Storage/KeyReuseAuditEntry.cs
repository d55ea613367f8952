namespace Oncely;

/// <summary>An attempt to reuse a key for a different payload (decision-table row 8).</summary>
/// <param name="Id">The record the key maps to.</param>
/// <param name="StoredFingerprint">The fingerprint the record was reserved with.</param>
/// <param name="AttemptedFingerprint">The fingerprint of the rejected request.</param>
/// <param name="Payload">The rejected request's payload, redacted and capped.</param>
/// <param name="OccurredAt">When it happened.</param>
public sealed record KeyReuseAuditEntry(IdempotencyRecordId Id, string StoredFingerprint, string AttemptedFingerprint, string Payload, DateTimeOffset OccurredAt);
