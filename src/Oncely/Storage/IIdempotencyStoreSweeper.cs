namespace Oncely;

/// <summary>
/// Optional capability: a store whose expired records must be deleted by a sweeper (SQL stores). Stores with native
/// expiry (Redis) or in-process eviction do not implement it.
/// </summary>
public interface IIdempotencyStoreSweeper
{
    /// <summary>Deletes at most <paramref name="batchSize"/> expired records and returns how many it deleted.</summary>
    /// <param name="batchSize">The most records to delete in one call.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    ValueTask<int> PurgeExpiredAsync(int batchSize, CancellationToken cancellationToken);
}
