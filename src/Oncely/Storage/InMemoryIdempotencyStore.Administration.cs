namespace Oncely;

// The operator API's reads (IIdempotencyStoreAdministration) and the key-reuse audit (IIdempotencyAuditStore). Records
// are immutable snapshots, so listing reads them without any lock; the audit is a bounded list under its own lock.
public sealed partial class InMemoryIdempotencyStore : IIdempotencyAuditStore, IIdempotencyStoreAdministration
{
    /// <summary>
    /// The most key-reuse audit entries the store keeps; the oldest is dropped when a new one would exceed it (the
    /// host's sweeper also deletes entries older than the audit retention). 10,000.
    /// </summary>
    public const int MaxAuditEntries = 10_000;

    private const int MaxPageSize = 500;

    private readonly Lock _auditGate = new();
    private readonly LinkedList<(long Position, KeyReuseAuditEntry Entry)> _audit = new();
    private long _lastAuditPosition;

    /// <inheritdoc />
    /// <remarks>The entry is kept in memory, newest last, with at most <see cref="MaxAuditEntries"/> entries.</remarks>
    public ValueTask AppendAsync(KeyReuseAuditEntry entry, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_auditGate)
        {
            _audit.AddLast((++_lastAuditPosition, entry));
            if (_audit.Count > MaxAuditEntries)
            {
                _audit.RemoveFirst();
            }
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    /// <remarks>An entry's age is measured from its <see cref="KeyReuseAuditEntry.OccurredAt"/>, against the store's clock.</remarks>
    public ValueTask<int> PurgeAuditAsync(TimeSpan retention, int batchSize, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(retention, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        cancellationToken.ThrowIfCancellationRequested();
        var cutoff = _clock.GetUtcNow() - retention;
        var purged = 0;
        lock (_auditGate)
        {
            for (var node = _audit.First; node is not null && purged < batchSize;)
            {
                var next = node.Next;
                if (node.Value.Entry.OccurredAt < cutoff)
                {
                    _audit.Remove(node);
                    purged++;
                }

                node = next;
            }
        }

        return ValueTask.FromResult(purged);
    }

    /// <inheritdoc />
    public ValueTask<IdempotencyRecordPage> ListRecordsAsync(IdempotencyRecordQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentOutOfRangeException.ThrowIfLessThan(query.Limit, 1, nameof(query));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(query.Limit, MaxPageSize, nameof(query));
        cancellationToken.ThrowIfCancellationRequested();
        (DateTimeOffset CreatedAt, IdempotencyRecordId Id)? after = query.Continuation is { } continuation
            ? IdempotencyPageContinuation.ParseRecord(continuation)
            : null;
        var now = _clock.GetUtcNow();
        var matches = new List<IdempotencyRecord>();
        foreach (var stripe in _stripes)
        {
            foreach (var record in stripe.Values)
            {
                if (record.ExpiresAt > now
                    && (query.Tenant is null || string.Equals(record.Id.Tenant, query.Tenant, StringComparison.Ordinal))
                    && (query.Operation is null || string.Equals(record.Id.Operation, query.Operation, StringComparison.Ordinal))
                    && (query.State is null || record.State == query.State)
                    && (query.CreatedBefore is null || record.CreatedAt <= query.CreatedBefore)
                    && (after is null || CompareNewestFirst(record.CreatedAt, record.Id, after.Value.CreatedAt, after.Value.Id) > 0))
                {
                    matches.Add(record);
                }
            }
        }

        matches.Sort(static (a, b) => CompareNewestFirst(a.CreatedAt, a.Id, b.CreatedAt, b.Id));
        var page = matches.Take(query.Limit).Select(Summarize).ToList();
        var next = matches.Count > query.Limit ? IdempotencyPageContinuation.ForRecord(page[^1]) : null;
        return ValueTask.FromResult(new IdempotencyRecordPage(page, next));
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<IdempotencyRecordSummary>> FindByKeyAsync(string tenant, string key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentNullException.ThrowIfNull(key);
        cancellationToken.ThrowIfCancellationRequested();
        var now = _clock.GetUtcNow();
        var found = new List<IdempotencyRecord>();
        foreach (var stripe in _stripes)
        {
            foreach (var record in stripe.Values)
            {
                if (record.ExpiresAt > now
                    && string.Equals(record.Id.Tenant, tenant, StringComparison.Ordinal)
                    && string.Equals(record.Id.Key, key, StringComparison.Ordinal))
                {
                    found.Add(record);
                }
            }
        }

        found.Sort(static (a, b) => CompareNewestFirst(a.CreatedAt, a.Id, b.CreatedAt, b.Id));
        return ValueTask.FromResult<IReadOnlyList<IdempotencyRecordSummary>>([.. found.Select(Summarize)]);
    }

    /// <inheritdoc />
    public ValueTask<KeyReuseAuditPage> ListAuditAsync(KeyReuseAuditQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentOutOfRangeException.ThrowIfLessThan(query.Limit, 1, nameof(query));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(query.Limit, MaxPageSize, nameof(query));
        cancellationToken.ThrowIfCancellationRequested();
        var before = query.Continuation is { } continuation ? IdempotencyPageContinuation.ParseAudit(continuation) : long.MaxValue;
        var entries = new List<KeyReuseAuditEntry>(Math.Min(query.Limit, 64));
        long? last = null;
        var more = false;
        lock (_auditGate)
        {
            for (var node = _audit.Last; node is not null; node = node.Previous)
            {
                var (position, entry) = node.Value;
                if (position >= before
                    || (query.Tenant is not null && !string.Equals(entry.Id.Tenant, query.Tenant, StringComparison.Ordinal))
                    || (query.Operation is not null && !string.Equals(entry.Id.Operation, query.Operation, StringComparison.Ordinal))
                    || (query.Key is not null && !string.Equals(entry.Id.Key, query.Key, StringComparison.Ordinal)))
                {
                    continue;
                }

                if (entries.Count == query.Limit)
                {
                    more = true;
                    break;
                }

                entries.Add(entry);
                last = position;
            }
        }

        return ValueTask.FromResult(new KeyReuseAuditPage(entries, more ? IdempotencyPageContinuation.ForAudit(last!.Value) : null));
    }

    private static IdempotencyRecordSummary Summarize(IdempotencyRecord record) => new(
        record.Id,
        record.State,
        record.FencingToken,
        record.Fingerprint,
        record.CreatedAt,
        record.LeaseExpiresAt,
        record.ExpiresAt,
        record.RecoveryPoint,
        record.State == IdempotencyRecordState.Completed ? record.Response?.StatusCode : null,
        record.Attempts);

    // Negative when (aCreated, a) comes first in a newest-first listing: later creation first, then tenant, operation
    // and key, all descending (ordinal).
    private static int CompareNewestFirst(DateTimeOffset aCreated, IdempotencyRecordId a, DateTimeOffset bCreated, IdempotencyRecordId b)
    {
        var order = bCreated.UtcTicks.CompareTo(aCreated.UtcTicks);
        if (order == 0)
        {
            order = string.CompareOrdinal(b.Tenant, a.Tenant);
        }

        if (order == 0)
        {
            order = string.CompareOrdinal(b.Operation, a.Operation);
        }

        return order != 0 ? order : string.CompareOrdinal(b.Key, a.Key);
    }
}
