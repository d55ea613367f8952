using System.Data.Common;

namespace Oncely.MassTransit.Tests.Infrastructure;

/// <summary>
/// The real SQLite store behind a switch: while <see cref="Down"/>, every call fails the way an unreachable database
/// does (<see cref="IdempotencyStoreUnavailableException"/>), and nothing reaches the database. Its audit is the real
/// store's, behind the same switch.
/// </summary>
public sealed class OutageStore(IIdempotencyStore inner) : IIdempotencyStore, ITransactionalIdempotencyStore, IIdempotencyAuditStore
{
    private volatile bool _down;
    private int _refused;
    private int _failReservations;
    private int _failAudits;

    public bool Down
    {
        get => _down;
        set => _down = value;
    }

    public int Refused => Volatile.Read(ref _refused);

    /// <summary>The next <paramref name="count"/> reservations fail as if the store were down (a short outage met by one attempt).</summary>
    public void FailNextReservations(int count) => Volatile.Write(ref _failReservations, count);

    /// <summary>The next <paramref name="count"/> audit entries fail to be written, as if the store went down just then.</summary>
    public void FailNextAudits(int count) => Volatile.Write(ref _failAudits, count);

    private ITransactionalIdempotencyStore Transactional => (ITransactionalIdempotencyStore)inner;

    private IIdempotencyAuditStore Audit => (IIdempotencyAuditStore)inner;

    public ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
    {
        if (Interlocked.Decrement(ref _failReservations) >= 0)
        {
            Interlocked.Increment(ref _refused);
            return ValueTask.FromException<ReservationResult>(new IdempotencyStoreUnavailableException("The test failed this reservation as an outage would."));
        }

        return Guard(() => inner.TryReserveAsync(id, fingerprint, lease, expiration, cancellationToken));
    }

    public ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
        => Guard(() => inner.TryCompleteAsync(id, fencingToken, response, expiration, cancellationToken));

    public ValueTask<bool> TryReleaseAsync(IdempotencyRecordId id, long fencingToken, CancellationToken cancellationToken)
        => Guard(() => inner.TryReleaseAsync(id, fencingToken, cancellationToken));

    public ValueTask<bool> TrySetRecoveryPointAsync(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
        => Guard(() => inner.TrySetRecoveryPointAsync(id, fencingToken, recoveryPoint, lease, cancellationToken));

    public ValueTask<bool> TryRenewLeaseAsync(IdempotencyRecordId id, long fencingToken, TimeSpan lease, CancellationToken cancellationToken)
        => Guard(() => inner.TryRenewLeaseAsync(id, fencingToken, lease, cancellationToken));

    public ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken)
        => Guard(() => inner.GetAsync(id, cancellationToken));

    public ValueTask<bool> TryCompleteAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
        => Transactional.TryCompleteAsync(transaction, id, fencingToken, response, expiration, cancellationToken);

    public ValueTask<bool> TrySetRecoveryPointAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
        => Transactional.TrySetRecoveryPointAsync(transaction, id, fencingToken, recoveryPoint, lease, cancellationToken);

    public async ValueTask AppendAsync(KeyReuseAuditEntry entry, CancellationToken cancellationToken)
        => await Guard(async () =>
        {
            if (Interlocked.Decrement(ref _failAudits) >= 0)
            {
                throw new IdempotencyStoreUnavailableException("The test failed this audit entry as an outage would.");
            }

            await Audit.AppendAsync(entry, cancellationToken);
            return true;
        });

    public ValueTask<int> PurgeAuditAsync(TimeSpan retention, int batchSize, CancellationToken cancellationToken)
        => Guard(() => Audit.PurgeAuditAsync(retention, batchSize, cancellationToken));

    private ValueTask<T> Guard<T>(Func<ValueTask<T>> call)
    {
        if (_down)
        {
            Interlocked.Increment(ref _refused);
            return ValueTask.FromException<T>(new IdempotencyStoreUnavailableException("The test switched the idempotency store off."));
        }

        return call();
    }
}
