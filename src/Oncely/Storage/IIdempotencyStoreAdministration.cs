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
