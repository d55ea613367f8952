namespace Oncely.LoadTest;

/// <summary>
/// Counts every call into the real store (one call is one store round trip for the SQL stores: one statement,
/// preceded for SQLite by the store's per-connection <c>PRAGMA busy_timeout</c>). Forwards schema creation so the host
/// still initialises the store at start.
/// </summary>
internal sealed class CountingStore(IIdempotencyStore inner) : IIdempotencyStore, IIdempotencyStoreInitializer
{
    private long _calls;

    public long Calls => Interlocked.Read(ref _calls);

    public ValueTask InitializeAsync(CancellationToken cancellationToken)
        => inner is IIdempotencyStoreInitializer initializer ? initializer.InitializeAsync(cancellationToken) : ValueTask.CompletedTask;

    public ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        return inner.TryReserveAsync(id, fingerprint, lease, expiration, cancellationToken);
    }

    public ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        return inner.TryCompleteAsync(id, fencingToken, response, expiration, cancellationToken);
    }

    public ValueTask<bool> TryReleaseAsync(IdempotencyRecordId id, long fencingToken, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        return inner.TryReleaseAsync(id, fencingToken, cancellationToken);
    }

    public ValueTask<bool> TrySetRecoveryPointAsync(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        return inner.TrySetRecoveryPointAsync(id, fencingToken, recoveryPoint, lease, cancellationToken);
    }

    public ValueTask<bool> TryRenewLeaseAsync(IdempotencyRecordId id, long fencingToken, TimeSpan lease, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        return inner.TryRenewLeaseAsync(id, fencingToken, lease, cancellationToken);
    }

    public ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        return inner.GetAsync(id, cancellationToken);
    }
}
