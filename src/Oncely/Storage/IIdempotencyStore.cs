namespace Oncely;

/// <summary>
/// Where idempotency records live. Every method is one atomic transition of the record's state machine, decided
/// with the store's own clock; there is no read-then-write anywhere. Implementations must be safe to call from many
/// threads and, for shared stores, from many processes.
/// </summary>
/// <remarks>
/// A store that cannot be reached, or times out, throws <see cref="IdempotencyStoreUnavailableException"/>
/// (any other exception is treated the same way by the executor: fail closed, nothing executed).
/// </remarks>
public interface IIdempotencyStore
{
    /// <summary>
    /// Atomically reserves <paramref name="id"/> or reports what holds it. A record past its expiry counts as absent and
    /// is replaced. An InProgress record with the same fingerprint whose lease has expired is taken over with a new
    /// fencing token. A record with another fingerprint is never changed.
    /// </summary>
    /// <param name="id">The record to reserve.</param>
    /// <param name="fingerprint">The request fingerprint (lowercase hex SHA-256).</param>
    /// <param name="lease">How long the new holder's lease lasts from now (store clock).</param>
    /// <param name="expiration">How long the record lives from now (store clock) before it is purged.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken);

    /// <summary>
    /// Stores the response and marks the record Completed, only if it is InProgress and still carries
    /// <paramref name="fencingToken"/>. Returns <see langword="false"/> when the token is stale (the lease was taken over)
    /// or the record is gone; nothing is changed then.
    /// </summary>
    /// <param name="id">The record to complete.</param>
    /// <param name="fencingToken">The token the caller's reservation returned.</param>
    /// <param name="response">The first answer to keep.</param>
    /// <param name="expiration">How long the Completed record lives from now (store clock).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <remarks>The store must not keep a reference to <paramref name="response"/>'s body after returning: the caller's buffer may be pooled.</remarks>
    ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken);

    /// <summary>
    /// Gives the record up after a failed execution, only if it still carries <paramref name="fencingToken"/>.
    /// Without a recovery point the record is deleted, so a retry executes again. With a recovery point the record is
    /// kept and its lease ended at once, so a retry takes it over and resumes there.
    /// </summary>
    /// <param name="id">The record to release.</param>
    /// <param name="fencingToken">The token the caller's reservation returned.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    ValueTask<bool> TryReleaseAsync(IdempotencyRecordId id, long fencingToken, CancellationToken cancellationToken);

    /// <summary>
    /// Records that the execution holding <paramref name="fencingToken"/> committed the phase <paramref name="recoveryPoint"/>,
    /// and renews its lease. Returns <see langword="false"/> (and changes nothing) when the token is stale.
    /// </summary>
    /// <param name="id">The record.</param>
    /// <param name="fencingToken">The token the caller's reservation returned.</param>
    /// <param name="recoveryPoint">The name of the committed phase.</param>
    /// <param name="lease">The renewed lease, from now (store clock).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    ValueTask<bool> TrySetRecoveryPointAsync(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken);

    /// <summary>
    /// Extends the lease of the execution holding <paramref name="fencingToken"/> to <paramref name="lease"/> from now
    /// (store clock), in one conditional write: only while the record is InProgress, still carries that token and has
    /// not expired. Returns <see langword="false"/> (and changes nothing) otherwise: the token is stale (the lease was
    /// taken over), the record was completed, released or purged. The engine calls it periodically while an operation
    /// runs (<see cref="IdempotencyEngineOptions.LeaseRenewalInterval"/>), so only a crashed worker's record is taken over.
    /// </summary>
    /// <param name="id">The record.</param>
    /// <param name="fencingToken">The token the caller's reservation returned.</param>
    /// <param name="lease">The renewed lease, from now (store clock).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    ValueTask<bool> TryRenewLeaseAsync(IdempotencyRecordId id, long fencingToken, TimeSpan lease, CancellationToken cancellationToken);

    /// <summary>Reads the live record, or <see langword="null"/> when there is none (or it has expired).</summary>
    /// <param name="id">The record.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken);
}
