namespace Oncely;

/// <summary>Optional capability: a store that keeps an audit trail of keys reused with a different payload (SQL stores keep a table).</summary>
public interface IIdempotencyAuditStore
{
    /// <summary>Appends one audit entry.</summary>
    /// <param name="entry">What was attempted.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    ValueTask AppendAsync(KeyReuseAuditEntry entry, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes at most <paramref name="batchSize"/> audit entries older than <paramref name="retention"/> (measured with
    /// the store's clock) and returns how many it deleted, so the audit never grows without bound. The sweeper calls it
    /// repeatedly until a batch comes back short.
    /// </summary>
    /// <param name="retention">How long an entry is kept; older ones are deleted.</param>
    /// <param name="batchSize">The most entries to delete in one call.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    ValueTask<int> PurgeAuditAsync(TimeSpan retention, int batchSize, CancellationToken cancellationToken);
}
