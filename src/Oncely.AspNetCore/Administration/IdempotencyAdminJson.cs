using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Mvc;

namespace Oncely.AspNetCore;

/// <summary>A record as the operator API lists it: times in UTC (ISO-8601, <c>Z</c>); its stored answer is in <see cref="AdminRecordDetail"/>.</summary>
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

/// <summary>One record's detail: the record as listed, and what it stored of its first answer (Completed records only).</summary>
internal sealed record AdminRecordDetail(AdminRecord Record, AdminStoredAnswer? Answer);

/// <summary>
/// A stored answer as the operator API shows it: status, headers in order and the body's length, card numbers masked.
/// <c>Readable</c> is false when a protected answer cannot be decrypted (headers empty, length unknown).
/// </summary>
internal sealed record AdminStoredAnswer(
    int StatusCode,
    bool Protected,
    bool Readable,
    IReadOnlyList<AdminHeader> Headers,
    bool BodyOmitted,
    int? BodyLength,
    string BodyStatus,
    string? Body,
    bool BodyTruncated);

/// <summary>One stored header.</summary>
internal sealed record AdminHeader(string Name, string Value);

/// <summary>Why a stored body is or is not in a record's detail (<c>bodyStatus</c>).</summary>
internal static class AdminBodyStatus
{
    /// <summary>The body is returned (as text, card numbers masked, perhaps cut: <c>bodyTruncated</c>).</summary>
    public const string Shown = "shown";

    /// <summary>A body is stored but not returned: <see cref="IdempotencyAdminOptions.ShowStoredBodies"/> is off.</summary>
    public const string Hidden = "hidden";

    /// <summary>No body was kept: it was over the stored-response limit, or success bodies are not stored.</summary>
    public const string Omitted = "omitted";

    /// <summary>The answer had no body.</summary>
    public const string Empty = "empty";

    /// <summary>The body is not UTF-8 text; only its length is shown.</summary>
    public const string Binary = "binary";

    /// <summary>The answer is protected and could not be decrypted.</summary>
    public const string Unreadable = "unreadable";
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
[JsonSerializable(typeof(AdminRecordDetail))]
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
