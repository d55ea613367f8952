namespace Oncely;

// Erasure (IIdempotencyStoreErasure). Each stripe is decided under its own lock, the lock every transition takes, so a
// record is deleted only while it is Completed or expired and no reservation or completion can interleave.
public sealed partial class InMemoryIdempotencyStore : IIdempotencyStoreErasure
{
    /// <inheritdoc />
    public ValueTask<IdempotencyErasureResult> EraseTenantAsync(string tenant, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        return ValueTask.FromResult(Erase(tenant, null, cancellationToken));
    }

    /// <inheritdoc />
    public ValueTask<IdempotencyErasureResult> EraseKeyAsync(string tenant, string key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentException.ThrowIfNullOrEmpty(key);
        return ValueTask.FromResult(Erase(tenant, key, cancellationToken));
    }

    private IdempotencyErasureResult Erase(string tenant, string? key, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var erased = 0;
        var inProgress = new List<IdempotencyRecord>();
        var doomed = new List<IdempotencyRecordId>();
        for (var i = 0; i < StripeCount; i++)
        {
            lock (_locks[i])
            {
                var records = _stripes[i];
                var now = _clock.GetUtcNow();
                doomed.Clear();
                foreach (var (id, record) in records)
                {
                    if (!string.Equals(id.Tenant, tenant, StringComparison.Ordinal) || (key is not null && !string.Equals(id.Key, key, StringComparison.Ordinal)))
                    {
                        continue;
                    }

                    if (record.State == IdempotencyRecordState.InProgress && record.ExpiresAt > now)
                    {
                        inProgress.Add(record);
                    }
                    else
                    {
                        doomed.Add(id);
                    }
                }

                foreach (var id in doomed)
                {
                    records.TryRemove(id, out _);
                }

                erased += doomed.Count;
            }
        }

        var auditErased = 0;
        lock (_auditGate)
        {
            for (var node = _audit.First; node is not null;)
            {
                var next = node.Next;
                var id = node.Value.Entry.Id;
                if (string.Equals(id.Tenant, tenant, StringComparison.Ordinal)
                    && (key is null || string.Equals(id.Key, key, StringComparison.Ordinal))
                    && !string.Equals(id.Operation, IdempotencyEraser.AuditOperation, StringComparison.Ordinal))
                {
                    _audit.Remove(node);
                    auditErased++;
                }

                node = next;
            }
        }

        inProgress.Sort(static (a, b) => CompareNewestFirst(a.CreatedAt, a.Id, b.CreatedAt, b.Id));
        return new IdempotencyErasureResult(erased, auditErased, [.. inProgress.Select(Summarize)]);
    }
}
