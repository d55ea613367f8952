using System.Data.Common;

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

/// <summary>
/// Optional capability: a store that can only keep records whose ids fit within limits of its own (for example the
/// size of a database index entry). Hosts check their configuration against it at start-up, so a setting the store
/// cannot honour fails then, with a message that says what to change, rather than as an outage at run time.
/// </summary>
public interface IIdempotencyStoreLimits
{
    /// <summary>The longest idempotency key, in characters, the store accepts for every tenant and operation it is used with.</summary>
    int MaxKeyLength { get; }
}

/// <summary>An attempt to reuse a key for a different payload (decision-table row 8).</summary>
/// <param name="Id">The record the key maps to.</param>
/// <param name="StoredFingerprint">The fingerprint the record was reserved with.</param>
/// <param name="AttemptedFingerprint">The fingerprint of the rejected request.</param>
/// <param name="Payload">The rejected request's payload, redacted and capped.</param>
/// <param name="OccurredAt">When it happened.</param>
public sealed record KeyReuseAuditEntry(IdempotencyRecordId Id, string StoredFingerprint, string AttemptedFingerprint, string Payload, DateTimeOffset OccurredAt);

/// <summary>
/// Optional capability: a store with a schema to create or migrate. Hosts call it once at start; stores also call it
/// lazily before their first operation, so it must be idempotent and safe to call concurrently.
/// </summary>
public interface IIdempotencyStoreInitializer
{
    /// <summary>Creates or upgrades the store's schema.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    ValueTask InitializeAsync(CancellationToken cancellationToken);
}

/// <summary>
/// Optional capability: a SQL store that can make its transitions part of the application's own transaction
/// (transactional completion), so a business write and the record's completion commit together or not at all.
/// </summary>
/// <remarks>
/// The transaction is passed as its ADO.NET base type and the store checks its runtime type: a store accepts its own
/// driver's transactions (<c>SqliteTransaction</c> for the SQLite store, <c>NpgsqlTransaction</c> for the PostgreSQL
/// store) and throws <see cref="InvalidOperationException"/>, naming the type it received and the type it needs, for any
/// other. So <c>await using var tx = await connection.BeginTransactionAsync()</c> (static type <see cref="DbTransaction"/>)
/// works as it is.
/// </remarks>
public interface ITransactionalIdempotencyStore
{
    /// <summary>
    /// Inside <paramref name="transaction"/>: stores the response and marks the record Completed, only if it is
    /// InProgress with <paramref name="fencingToken"/>. Returns <see langword="false"/> (the caller rolls back) when the
    /// token is stale. Nothing is visible to others until the transaction commits.
    /// </summary>
    /// <param name="transaction">The application's open transaction on the store's database, of the store's driver.</param>
    /// <param name="id">The record.</param>
    /// <param name="fencingToken">The caller's token.</param>
    /// <param name="response">The answer to store.</param>
    /// <param name="expiration">How long the Completed record lives from now (store clock).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="InvalidOperationException"><paramref name="transaction"/> is not of the store's driver, or not on the store's database.</exception>
    ValueTask<bool> TryCompleteAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken);

    /// <summary>
    /// Inside <paramref name="transaction"/>: records the committed phase and renews the lease, only if the record is
    /// InProgress with <paramref name="fencingToken"/>; otherwise returns <see langword="false"/>.
    /// </summary>
    /// <param name="transaction">The application's open transaction on the store's database, of the store's driver.</param>
    /// <param name="id">The record.</param>
    /// <param name="fencingToken">The caller's token.</param>
    /// <param name="recoveryPoint">The phase name.</param>
    /// <param name="lease">The renewed lease, from now (store clock).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="InvalidOperationException"><paramref name="transaction"/> is not of the store's driver, or not on the store's database.</exception>
    ValueTask<bool> TrySetRecoveryPointAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken);

    /// <summary>
    /// One-commit mode. Inside <paramref name="transaction"/>: reserves <paramref name="id"/> exactly as
    /// <see cref="IIdempotencyStore.TryReserveAsync"/> does (a new InProgress record with a new fencing token; an expired
    /// record replaced; a same-fingerprint InProgress record whose lease expired taken over, fenced), but the new record
    /// is visible to nobody until the transaction commits, and vanishes if it rolls back. A concurrent transaction that
    /// holds the same key uncommitted is waited for, at most <paramref name="lockTimeout"/>: when it commits, its record is
    /// reported (Completed: replay; other fingerprint: mismatch); when it rolls back, this reservation proceeds.
    /// </summary>
    /// <param name="transaction">The application's open transaction on the store's database, of the store's driver. Call it as the transaction's first statement.</param>
    /// <param name="id">The record to reserve.</param>
    /// <param name="fingerprint">The request fingerprint (lowercase hex SHA-256).</param>
    /// <param name="lease">How long the new holder's lease lasts from now (store clock); it only matters if the transaction commits the reservation without completing it.</param>
    /// <param name="expiration">How long the record lives from now (store clock).</param>
    /// <param name="lockTimeout">
    /// The longest wait on another transaction that holds the key. When it runs out the store reports
    /// <see cref="ReservationOutcome.InProgress"/> (the caller's transaction is then unusable and must be rolled back).
    /// Stores whose writers are serialised before the transaction's first statement (SQLite) may ignore it.
    /// </param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>
    /// The outcome and the record. Only <see cref="ReservationOutcome.Acquired"/> and <see cref="ReservationOutcome.TakenOver"/>
    /// let the caller go on; for the others the caller rolls back. The record can be <see langword="null"/> when the
    /// store cannot read the conflicting row inside this transaction (for example under REPEATABLE READ, where a row
    /// committed after the transaction's snapshot is invisible): the caller reads it after rolling back.
    /// </returns>
    /// <exception cref="InvalidOperationException"><paramref name="transaction"/> is not of the store's driver, or not on the store's database.</exception>
    ValueTask<TransactionalReservationResult> TryReserveAsync(DbTransaction transaction, IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, TimeSpan lockTimeout, CancellationToken cancellationToken)
        => throw new InvalidOperationException(
            $"The idempotency store {GetType().Name} cannot reserve inside a transaction, so it does not support one-commit endpoints. " +
            "Use the SQLite or PostgreSQL store on the application's database, or remove WithOneCommitReservation / OneCommitReservation from the endpoint.");

    /// <summary>
    /// One-commit mode: whether <paramref name="exception"/>, which ended an operation while its transaction on this
    /// store's database was open, is a transient failure of that database, as this store's driver reports it: the
    /// connection was lost or refused, the server is shutting down or restarting, a serialization failure, a deadlock,
    /// a lock wait that ran out (SQLite: the database was busy or locked). Such a transaction committed nothing (or, when
    /// the connection was lost during its <c>COMMIT</c>, committed its effect with its stored answer, which a retry
    /// replays), so the caller answers as it does for an unreachable store (<c>503</c> with <c>Retry-After</c>) and the
    /// client's retry runs the operation once.
    /// </summary>
    /// <param name="exception">What the operation threw; the store looks through its inner exceptions for its driver's.</param>
    /// <returns>
    /// <see langword="true"/> only for the driver's transient failures; <see langword="false"/> for anything else: an
    /// error in the operation's own statements (a constraint violation, a syntax error), a cancellation, an exception of
    /// another library. Defaults to <see langword="false"/>.
    /// </returns>
    bool IsTransientFailure(Exception exception) => false;
}

/// <summary>The result of <see cref="ITransactionalIdempotencyStore.TryReserveAsync"/> (one-commit mode).</summary>
/// <param name="Outcome">What the reservation found.</param>
/// <param name="Record">
/// The record as this transaction sees it after the reservation (its own record when acquired or taken over), or
/// <see langword="null"/> when the conflicting row could not be read inside the transaction.
/// </param>
public readonly record struct TransactionalReservationResult(ReservationOutcome Outcome, IdempotencyRecord? Record)
{
    /// <summary><see langword="true"/> when this transaction now holds the record and must execute.</summary>
    public bool MustExecute => Outcome is ReservationOutcome.Acquired or ReservationOutcome.TakenOver;
}
