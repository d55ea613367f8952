namespace Oncely.MassTransit.Tests.Infrastructure;

/// <summary>A store that indexes keys of at most <paramref name="maxKeyLength"/> characters (as PostgreSQL's does), over a real store.</summary>
public sealed class LimitedStore(IIdempotencyStore inner, int maxKeyLength) : IIdempotencyStore, IIdempotencyStoreLimits
{
    public int MaxKeyLength => maxKeyLength;

    public ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
        => inner.TryReserveAsync(id, fingerprint, lease, expiration, cancellationToken);

    public ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
        => inner.TryCompleteAsync(id, fencingToken, response, expiration, cancellationToken);

    public ValueTask<bool> TryReleaseAsync(IdempotencyRecordId id, long fencingToken, CancellationToken cancellationToken)
        => inner.TryReleaseAsync(id, fencingToken, cancellationToken);

    public ValueTask<bool> TrySetRecoveryPointAsync(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
        => inner.TrySetRecoveryPointAsync(id, fencingToken, recoveryPoint, lease, cancellationToken);

    public ValueTask<bool> TryRenewLeaseAsync(IdempotencyRecordId id, long fencingToken, TimeSpan lease, CancellationToken cancellationToken)
        => inner.TryRenewLeaseAsync(id, fencingToken, lease, cancellationToken);

    public ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken)
        => inner.GetAsync(id, cancellationToken);
}
