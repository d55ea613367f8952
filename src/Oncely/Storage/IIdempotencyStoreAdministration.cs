namespace Oncely;

/// <summary>
/// Optional store capability behind the operator API (<c>MapIdempotencyAdmin</c>): lists records, looks one up by tenant
/// and key, and reads the key-reuse audit. Releasing a stuck record needs no extra method: it is the fenced
/// <see cref="IIdempotencyStore.TryReleaseAsync"/>, called with the token the operator saw. Every store shipped with Oncely
/// implements it; reads here never change a record and never return a stored body.
/// </summary>
public interface IIdempotencyStoreAdministration
{
    /// <summary>
    /// Lists live (unexpired) records matching <paramref name="query"/>, newest first (by creation time, ties broken by
    /// tenant, operation and key, descending), one page at a time.
    /// </summary>
    /// <param name="query">The filters, page size and continuation.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <remarks>
    /// Paging is by keyset: the continuation names the last record of the previous page (see
    /// <see cref="IdempotencyPageContinuation"/>), so every record that stays live is listed exactly once across the pages.
    /// </remarks>
    /// <exception cref="ArgumentException">The limit is out of range, or the continuation is not one this listing returned.</exception>
    ValueTask<IdempotencyRecordPage> ListRecordsAsync(IdempotencyRecordQuery query, CancellationToken cancellationToken);

    /// <summary>
    /// Finds the live records of one tenant that carry <paramref name="key"/>, under any operation (a key is unique per
    /// operation, so more than one can exist). Newest first.
    /// </summary>
    /// <param name="tenant">The tenant (scope) of the records.</param>
    /// <param name="key">The client's idempotency key, exactly.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    ValueTask<IReadOnlyList<IdempotencyRecordSummary>> FindByKeyAsync(string tenant, string key, CancellationToken cancellationToken);

    /// <summary>Reads the key-reuse audit (entries matching <paramref name="query"/>), newest first, one page at a time.</summary>
    /// <param name="query">The filters, page size and continuation.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="ArgumentException">The limit is out of range, or the continuation is not one this listing returned.</exception>
    ValueTask<KeyReuseAuditPage> ListAuditAsync(KeyReuseAuditQuery query, CancellationToken cancellationToken);
}

/// <summary>Which records <see cref="IIdempotencyStoreAdministration.ListRecordsAsync"/> returns.</summary>
public sealed record IdempotencyRecordQuery
{
    /// <summary>Only this tenant's records; default all tenants (<see langword="null"/>).</summary>
    public string? Tenant { get; init; }

    /// <summary>Only records in this state; default any state (<see langword="null"/>).</summary>
    public IdempotencyRecordState? State { get; init; }

    /// <summary>Only this operation's records (exact name); default any operation (<see langword="null"/>).</summary>
    public string? Operation { get; init; }

    /// <summary>Only records created at or before this instant (older than a given age); default no bound.</summary>
    public DateTimeOffset? CreatedBefore { get; init; }

    /// <summary>The page size, 1 to 500; default 50.</summary>
    public int Limit { get; init; } = 50;

    /// <summary>
    /// Where to continue: <see cref="IdempotencyRecordPage.Continuation"/> of the previous page, or <see langword="null"/>
    /// for the first page. Opaque; only valid for the store that produced it and the same filters.
    /// </summary>
    public string? Continuation { get; init; }
}

/// <summary>
/// One record as the operator API shows it: its state and timing, never its stored body or headers.
/// </summary>
/// <param name="Id">Tenant, operation and key.</param>
/// <param name="State">InProgress or Completed.</param>
/// <param name="FencingToken">The current holder's token; pass it back to release the record (fenced).</param>
/// <param name="Fingerprint">The fingerprint of the payload that reserved the record (a hash, not the payload).</param>
/// <param name="CreatedAt">When the record was created (store clock).</param>
/// <param name="LeaseExpiresAt">When the current lease ends; meaningful for InProgress records.</param>
/// <param name="ExpiresAt">When the record expires and is purged.</param>
/// <param name="RecoveryPoint">The last committed phase, when the operation set one.</param>
/// <param name="StatusCode">The stored answer's status code, for Completed records.</param>
public sealed record IdempotencyRecordSummary(
    IdempotencyRecordId Id,
    IdempotencyRecordState State,
    long FencingToken,
    string Fingerprint,
    DateTimeOffset CreatedAt,
    DateTimeOffset LeaseExpiresAt,
    DateTimeOffset ExpiresAt,
    string? RecoveryPoint,
    int? StatusCode);

/// <summary>One page of records.</summary>
/// <param name="Records">The records, newest first.</param>
/// <param name="Continuation">Pass to <see cref="IdempotencyRecordQuery.Continuation"/> for the next page; <see langword="null"/> on the last page.</param>
public sealed record IdempotencyRecordPage(IReadOnlyList<IdempotencyRecordSummary> Records, string? Continuation);

/// <summary>Which audit entries <see cref="IIdempotencyStoreAdministration.ListAuditAsync"/> returns.</summary>
public sealed record KeyReuseAuditQuery
{
    /// <summary>Only this tenant's entries; default all (<see langword="null"/>).</summary>
    public string? Tenant { get; init; }

    /// <summary>Only this operation's entries; default all (<see langword="null"/>).</summary>
    public string? Operation { get; init; }

    /// <summary>Only entries for this key; default all (<see langword="null"/>).</summary>
    public string? Key { get; init; }

    /// <summary>The page size, 1 to 500; default 50.</summary>
    public int Limit { get; init; } = 50;

    /// <summary>Where to continue: the previous page's <see cref="KeyReuseAuditPage.Continuation"/>; opaque.</summary>
    public string? Continuation { get; init; }
}

/// <summary>One page of the key-reuse audit.</summary>
/// <param name="Entries">The entries, newest first.</param>
/// <param name="Continuation">Pass to <see cref="KeyReuseAuditQuery.Continuation"/> for the next page; <see langword="null"/> on the last page.</param>
public sealed record KeyReuseAuditPage(IReadOnlyList<KeyReuseAuditEntry> Entries, string? Continuation);
