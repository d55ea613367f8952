using System.Collections.Concurrent;

namespace Oncely;

/// <summary>
/// A store kept in this process's memory: safe under any concurrency within the process, with leases, fencing and
/// expiry decided by the injected <see cref="TimeProvider"/>. It is the store for development, tests and single-instance
/// apps that accept losing every record on a restart; it cannot coordinate several instances.
/// </summary>
/// <remarks>
/// Records are immutable snapshots. Every transition replaces one under its stripe's lock; a reservation first reads
/// without any lock and answers a replay, an in-progress duplicate or a reused key from that read alone (decision-table
/// row 20), taking the lock only when the read shows the key absent, expired or takeable, and then deciding again
/// under the lock.
/// </remarks>
public sealed partial class InMemoryIdempotencyStore : IIdempotencyStore, IIdempotencyStoreSweeper
{
    private const int StripeCount = 64;

    private readonly ConcurrentDictionary<IdempotencyRecordId, IdempotencyRecord>[] _stripes;
    private readonly Lock[] _locks;
    private readonly TimeProvider _clock;
    private long _lastToken;

    /// <summary>Creates an empty store.</summary>
    /// <param name="timeProvider">The clock for leases and expiry; defaults to <see cref="TimeProvider.System"/>.</param>
    public InMemoryIdempotencyStore(TimeProvider? timeProvider = null)
    {
        _clock = timeProvider ?? TimeProvider.System;
        _stripes = new ConcurrentDictionary<IdempotencyRecordId, IdempotencyRecord>[StripeCount];
        _locks = new Lock[StripeCount];
        for (var i = 0; i < StripeCount; i++)
        {
            _stripes[i] = new ConcurrentDictionary<IdempotencyRecordId, IdempotencyRecord>();
            _locks[i] = new Lock();
        }
    }

    /// <summary>How many records the store holds, expired ones included until they are purged.</summary>
    public int Count
    {
        get
        {
            var count = 0;
            for (var i = 0; i < StripeCount; i++)
            {
                lock (_locks[i])
                {
                    count += _stripes[i].Count;
                }
            }

            return count;
        }
    }

    /// <inheritdoc />
    public ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fingerprint);
        cancellationToken.ThrowIfCancellationRequested();
        var stripe = StripeOf(id);
        var records = _stripes[stripe];

        // The read path: no lock. A record is replaced whole, never changed in place, so what is read is one real state.
        if (records.TryGetValue(id, out var seen) && Answer(seen, fingerprint, _clock.GetUtcNow()) is { } answered)
        {
            return ValueTask.FromResult(answered);
        }

        lock (_locks[stripe])
        {
            var now = _clock.GetUtcNow();
            if (records.TryGetValue(id, out var existing) && existing.ExpiresAt > now)
            {
                if (Answer(existing, fingerprint, now) is { } answer)
                {
                    return ValueTask.FromResult(answer);
                }

                var takenOver = new IdempotencyRecord
                {
                    Id = id,
                    Fingerprint = fingerprint,
                    State = IdempotencyRecordState.InProgress,
                    FencingToken = NextToken(),
                    LeaseExpiresAt = now + lease,
                    ExpiresAt = existing.ExpiresAt,
                    RecoveryPoint = existing.RecoveryPoint,
                    Attempts = existing.Attempts + 1,
                    CreatedAt = existing.CreatedAt,
                };
                records[id] = takenOver;
                return ValueTask.FromResult(new ReservationResult(ReservationOutcome.TakenOver, takenOver));
            }

            var created = new IdempotencyRecord
            {
                Id = id,
                Fingerprint = fingerprint,
                State = IdempotencyRecordState.InProgress,
                FencingToken = NextToken(),
                LeaseExpiresAt = now + lease,
                ExpiresAt = now + expiration,
                CreatedAt = now,
            };
            records[id] = created;
            return ValueTask.FromResult(new ReservationResult(ReservationOutcome.Acquired, created));
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(response);
        cancellationToken.ThrowIfCancellationRequested();
        var stripe = StripeOf(id);
        lock (_locks[stripe])
        {
            var records = _stripes[stripe];
            if (!records.TryGetValue(id, out var existing) || !IsHeldBy(existing, fencingToken))
            {
                return ValueTask.FromResult(false);
            }

            // The body is copied: the caller's buffer may be pooled and reused once this returns.
            var kept = new IdempotentResponse(response.StatusCode, [.. response.Headers], response.Body.ToArray(), response.BodyOmitted);
            records[id] = new IdempotencyRecord
            {
                Id = id,
                Fingerprint = existing.Fingerprint,
                State = IdempotencyRecordState.Completed,
                FencingToken = existing.FencingToken,
                LeaseExpiresAt = existing.LeaseExpiresAt,
                ExpiresAt = _clock.GetUtcNow() + expiration,
                RecoveryPoint = existing.RecoveryPoint,
                Response = kept,
                Attempts = existing.Attempts,
                CreatedAt = existing.CreatedAt,
            };
            return ValueTask.FromResult(true);
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> TryReleaseAsync(IdempotencyRecordId id, long fencingToken, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var stripe = StripeOf(id);
        lock (_locks[stripe])
        {
            var records = _stripes[stripe];
            if (!records.TryGetValue(id, out var existing) || !IsHeldBy(existing, fencingToken))
            {
                return ValueTask.FromResult(false);
            }

            if (existing.RecoveryPoint is null)
            {
                records.TryRemove(id, out _);
            }
            else
            {
                records[id] = With(existing, leaseExpiresAt: _clock.GetUtcNow(), recoveryPoint: existing.RecoveryPoint);
            }

            return ValueTask.FromResult(true);
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> TrySetRecoveryPointAsync(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(recoveryPoint);
        cancellationToken.ThrowIfCancellationRequested();
        var stripe = StripeOf(id);
        lock (_locks[stripe])
        {
            var records = _stripes[stripe];
            var now = _clock.GetUtcNow();
            if (!records.TryGetValue(id, out var existing) || !IsHeldBy(existing, fencingToken) || existing.ExpiresAt <= now)
            {
                return ValueTask.FromResult(false);
            }

            records[id] = With(existing, leaseExpiresAt: now + lease, recoveryPoint: recoveryPoint);
            return ValueTask.FromResult(true);
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> TryRenewLeaseAsync(IdempotencyRecordId id, long fencingToken, TimeSpan lease, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var stripe = StripeOf(id);
        lock (_locks[stripe])
        {
            var records = _stripes[stripe];
            var now = _clock.GetUtcNow();
            if (!records.TryGetValue(id, out var existing) || !IsHeldBy(existing, fencingToken) || existing.ExpiresAt <= now)
            {
                return ValueTask.FromResult(false);
            }

            records[id] = With(existing, leaseExpiresAt: now + lease, recoveryPoint: existing.RecoveryPoint);
            return ValueTask.FromResult(true);
        }
    }

    /// <inheritdoc />
    public ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return _stripes[StripeOf(id)].TryGetValue(id, out var existing) && existing.ExpiresAt > _clock.GetUtcNow()
            ? ValueTask.FromResult<IdempotencyRecord?>(existing)
            : ValueTask.FromResult<IdempotencyRecord?>(null);
    }

    /// <inheritdoc />
    public ValueTask<int> PurgeExpiredAsync(int batchSize, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        var purged = 0;
        var now = _clock.GetUtcNow();
        List<IdempotencyRecordId>? expired = null;
        for (var i = 0; i < StripeCount && purged < batchSize; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            lock (_locks[i])
            {
                var records = _stripes[i];
                expired?.Clear();
                foreach (var pair in records)
                {
                    if (pair.Value.ExpiresAt <= now)
                    {
                        (expired ??= []).Add(pair.Key);
                        if (purged + expired.Count >= batchSize)
                        {
                            break;
                        }
                    }
                }

                if (expired is not null)
                {
                    foreach (var id in expired)
                    {
                        records.TryRemove(id, out _);
                    }

                    purged += expired.Count;
                }
            }
        }

        return ValueTask.FromResult(purged);
    }

    /// <summary>The answer a live record gives without any write, or <see langword="null"/> when the caller may take it.</summary>
    private static ReservationResult? Answer(IdempotencyRecord record, string fingerprint, DateTimeOffset now)
    {
        if (record.ExpiresAt <= now)
        {
            return null;
        }

        if (!string.Equals(record.Fingerprint, fingerprint, StringComparison.Ordinal))
        {
            return new ReservationResult(ReservationOutcome.FingerprintMismatch, record);
        }

        if (record.State == IdempotencyRecordState.Completed)
        {
            return new ReservationResult(ReservationOutcome.Completed, record);
        }

        return record.LeaseExpiresAt > now ? new ReservationResult(ReservationOutcome.InProgress, record) : null;
    }

    private static bool IsHeldBy(IdempotencyRecord record, long fencingToken)
        => record.State == IdempotencyRecordState.InProgress && record.FencingToken == fencingToken;

    private static IdempotencyRecord With(IdempotencyRecord record, DateTimeOffset leaseExpiresAt, string? recoveryPoint) => new()
    {
        Id = record.Id,
        Fingerprint = record.Fingerprint,
        State = record.State,
        FencingToken = record.FencingToken,
        LeaseExpiresAt = leaseExpiresAt,
        ExpiresAt = record.ExpiresAt,
        RecoveryPoint = recoveryPoint,
        Response = record.Response,
        Attempts = record.Attempts,
        CreatedAt = record.CreatedAt,
    };

    private static int StripeOf(IdempotencyRecordId id) => (int)((uint)id.GetHashCode() % StripeCount);

    private long NextToken() => Interlocked.Increment(ref _lastToken);
}
