using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Mvc;

namespace Oncely.AspNetCore;

/// <summary>A record as the operator API shows it: times in UTC (ISO-8601, <c>Z</c>), never the stored body or headers.</summary>
internal sealed record AdminRecord(
    string Tenant,
    string Operation,
    string Key,
    IdempotencyRecordState State,
    long FencingToken,
    string Fingerprint,
    DateTime CreatedAt,
    DateTime LeaseExpiresAt,
    DateTime ExpiresAt,
    string? RecoveryPoint,
    int? StatusCode,
    int Attempts)
{
    public static AdminRecord From(IdempotencyRecordSummary summary) => new(
        summary.Id.Tenant,
        summary.Id.Operation,
        summary.Id.Key,
        summary.State,
        summary.FencingToken,
        summary.Fingerprint,
        summary.CreatedAt.UtcDateTime,
        summary.LeaseExpiresAt.UtcDateTime,
        summary.ExpiresAt.UtcDateTime,
        summary.RecoveryPoint,
        summary.StatusCode,
        summary.Attempts);
}

internal sealed record AdminRecordPage(IReadOnlyList<AdminRecord> Records, string? Continuation);

/// <summary>
/// An audit entry as the operator API shows it. Its payload was redacted before it was stored; card numbers are masked
/// again on the way out, for entries written before that masking existed or by a store of one's own.
/// </summary>
internal sealed record AdminAuditEntry(
    string Tenant,
    string Operation,
    string Key,
    string StoredFingerprint,
    string AttemptedFingerprint,
    string Payload,
    DateTime OccurredAt)
{
    public static AdminAuditEntry From(KeyReuseAuditEntry entry) => new(
        entry.Id.Tenant,
        entry.Id.Operation,
        entry.Id.Key,
        entry.StoredFingerprint,
        entry.AttemptedFingerprint,
        PrimaryAccountNumbers.Mask(entry.Payload),
        entry.OccurredAt.UtcDateTime);
}

internal sealed record AdminAuditPage(IReadOnlyList<AdminAuditEntry> Entries, string? Continuation);

/// <summary>The body of <c>POST {prefix}/records/release</c>: the record, and the fencing token the operator saw.</summary>
internal sealed record AdminReleaseRequest(string? Tenant, string? Operation, string? Key, long? FencingToken);

/// <summary>The body of <c>POST {prefix}/records/erase-tenant</c> (<c>{"tenant"}</c>) and <c>…/erase-key</c> (<c>{"tenant","key"}</c>).</summary>
internal sealed record AdminEraseRequest(string? Tenant, string? Key);

/// <summary>The answer of a complete erasure: what was erased; <c>inProgress</c> is empty (otherwise the answer is a <c>409</c>).</summary>
internal sealed record AdminErasure(string Tenant, string? Key, int RecordsErased, int AuditEntriesErased, IReadOnlyList<AdminRecord> InProgress)
{
    public static AdminErasure From(string tenant, string? key, IdempotencyErasureResult result)
        => new(tenant, key, result.RecordsErased, result.AuditEntriesErased, [.. result.InProgress.Select(AdminRecord.From)]);
}

[JsonSerializable(typeof(AdminRecordPage))]
[JsonSerializable(typeof(AdminEraseRequest))]
[JsonSerializable(typeof(AdminErasure))]
[JsonSerializable(typeof(AdminRecord[]))]
[JsonSerializable(typeof(int))]
[JsonSerializable(typeof(AdminAuditPage))]
[JsonSerializable(typeof(AdminReleaseRequest))]
[JsonSerializable(typeof(ProblemDetails))]
[JsonSerializable(typeof(long))]
[JsonSerializable(typeof(string))]
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    UseStringEnumConverter = true,
    PropertyNameCaseInsensitive = true,
    RespectNullableAnnotations = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
internal sealed partial class AdminJsonContext : JsonSerializerContext;
