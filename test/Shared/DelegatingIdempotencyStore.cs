namespace Oncely.Testing;

/// <summary>
/// A real store behind a test's decorator: every call goes to <see cref="Inner"/> unless the decorator overrides it, so a
/// test store states only what it changes (counting, limits, failures).
/// </summary>
public abstract class DelegatingIdempotencyStore(IIdempotencyStore inner) : IIdempotencyStore
{
    /// <summary>The store every call goes to.</summary>
    protected IIdempotencyStore Inner { get; } = inner;

    public virtual ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
        => Inner.TryReserveAsync(id, fingerprint, lease, expiration, cancellationToken);

    public virtual ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
        => Inner.TryCompleteAsync(id, fencingToken, response, expiration, cancellationToken);

    public virtual ValueTask<bool> TryReleaseAsync(IdempotencyRecordId id, long fencingToken, CancellationToken cancellationToken)
        => Inner.TryReleaseAsync(id, fencingToken, cancellationToken);

    public virtual ValueTask<bool> TrySetRecoveryPointAsync(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
        => Inner.TrySetRecoveryPointAsync(id, fencingToken, recoveryPoint, lease, cancellationToken);

    public virtual ValueTask<bool> TryRenewLeaseAsync(IdempotencyRecordId id, long fencingToken, TimeSpan lease, CancellationToken cancellationToken)
        => Inner.TryRenewLeaseAsync(id, fencingToken, lease, cancellationToken);

    public virtual ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken)
        => Inner.GetAsync(id, cancellationToken);
}
