namespace Oncely;

/// <summary>
/// Optional store capability: erases everything the store holds for one tenant, or for one tenant's key, on request (a
/// customer's right to erasure). Every store shipped with Oncely implements it; call it through
/// <see cref="IdempotencyEraser"/>, which also audits and logs the erasure, or through the operator API.
/// </summary>
/// <remarks>
/// <para>What is erased: every record of the scope that is Completed or past its expiry (its stored answer with it), and
/// every key-reuse audit entry of the scope (its payload with it). Audit entries of earlier erasures
/// (<see cref="IdempotencyEraser.AuditOperation"/>) are never erased: they are the proof that an erasure happened.</para>
/// <para>What is kept: every unexpired InProgress record, whatever its lease. Its operation may be running: erasing the
/// record would let the client's retry run it a second time (a second charge). Such records are reported in
/// <see cref="IdempotencyErasureResult.InProgress"/>; erase again once they have completed, or release a stuck one first.</para>
/// <para>Each record is decided atomically: it is deleted only if, at the moment of its deletion, it is Completed or
/// expired (a conditional delete, a script that checks the state), so a reservation, take-over or completion racing the
/// erasure never loses a record it holds. A record reserved after the erasure passed its key is new and is kept.</para>
/// <para>A store of your own opts in by implementing this interface (and keeping the key-reuse audit through
/// <see cref="IIdempotencyAuditStore"/>); a decorator must pass it on. The conformance suite
/// <c>IdempotencyStoreErasureSpecification</c> is its contract.</para>
/// </remarks>
public interface IIdempotencyStoreErasure
{
    /// <summary>Erases every record and key-reuse audit entry of <paramref name="tenant"/>, under every operation and key, except records in progress.</summary>
    /// <param name="tenant">The tenant, exactly (<see cref="IdempotencyRecordId.AnonymousTenant"/> for the anonymous scope).</param>
    /// <param name="cancellationToken">Cancels the call; what was erased before stays erased, and erasing again is safe.</param>
    /// <returns>How many records and audit entries were erased, and the records in progress that were kept.</returns>
    ValueTask<IdempotencyErasureResult> EraseTenantAsync(string tenant, CancellationToken cancellationToken);

    /// <summary>Erases the records (under every operation) and the key-reuse audit entries of one tenant's <paramref name="key"/>, except records in progress.</summary>
    /// <param name="tenant">The tenant, exactly (<see cref="IdempotencyRecordId.AnonymousTenant"/> for the anonymous scope).</param>
    /// <param name="key">The client's idempotency key, exactly.</param>
    /// <param name="cancellationToken">Cancels the call; what was erased before stays erased, and erasing again is safe.</param>
    /// <returns>How many records and audit entries were erased, and the records in progress that were kept.</returns>
    ValueTask<IdempotencyErasureResult> EraseKeyAsync(string tenant, string key, CancellationToken cancellationToken);
}
