using System.Data.Common;
using System.Security.Cryptography;
using System.Text;

namespace Oncely;

/// <summary>
/// The lease one attempt holds on a record while it runs the operation: its fencing token, the recovery point it
/// resumes from, and the transitions it may make. Obtained from <see cref="IdempotencyExecutor.BeginAsync"/> (or, in
/// ASP.NET Core, from the request's <c>IIdempotencyFeature</c>).
/// </summary>
/// <remarks>
/// While the attempt runs, the engine renews its lease in the background (every
/// <see cref="IdempotencyEngineOptions.LeaseRenewalInterval"/>, fenced by <see cref="FencingToken"/>), so a slow
/// operation is not taken over while it is still running. Renewal stops when the completion or release is written, when
/// the completion is written in the operation's transaction, when the store refuses it (the token is stale), or when
/// the execution is disposed. Whoever obtained the execution from <see cref="IdempotencyExecutor.BeginAsync"/> disposes
/// it when the attempt is over.
/// </remarks>
public sealed class IdempotencyExecution : IAsyncDisposable
{
    private readonly IdempotencyExecutor _executor;
    private long _fencingToken;
    private int _reservationPending;
    private int _finished;
    private int _completedInTransaction;
    // One-commit mode: the engine clock's timestamp taken just before the reservation was sent (0 until then).
    private long _reservationSentAt;
    // 1 while this attempt is counted in oncely.active_executions (only while a listener is attached).
    private int _active;
    // Renewal: one timer per running attempt, and a store call only when it fires (rare: most attempts finish long
    // before a third of their lease). _renewalGate guards the timer, the stopped flag and the call in flight.
    private Lock? _renewalGate;
    private ITimer? _renewalTimer;
    private bool _renewalStopped;
    private Task? _renewalInFlight;

    internal IdempotencyExecution(IdempotencyExecutor executor, IdempotencyRecord record, bool isTakeOver)
    {
        _executor = executor;
        Id = record.Id;
        Fingerprint = record.Fingerprint;
        _fencingToken = record.FencingToken;
        IsTakeOver = isTakeOver;
        ResumedFrom = record.RecoveryPoint;
        RecoveryPoint = record.RecoveryPoint;
        _active = executor.Instrumentation.EnterExecution(Id.Operation) ? 1 : 0;
    }

    // One-commit mode: nothing is reserved yet; ReserveInTransactionAsync reserves inside the operation's transaction.
    internal IdempotencyExecution(IdempotencyExecutor executor, IdempotencyRecordId id, string fingerprint)
    {
        _executor = executor;
        Id = id;
        Fingerprint = fingerprint;
        IsOneCommit = true;
        _reservationPending = 1;
        _active = executor.Instrumentation.EnterExecution(Id.Operation) ? 1 : 0;
    }

    /// <summary>The record this attempt holds.</summary>
    public IdempotencyRecordId Id { get; }

    /// <summary>The request fingerprint the record was reserved with.</summary>
    public string Fingerprint { get; }

    /// <summary>
    /// This attempt's fencing token; any write with another token is refused by the store. Zero in one-commit mode
    /// until <see cref="ReserveInTransactionAsync"/> has reserved the record.
    /// </summary>
    public long FencingToken => Volatile.Read(ref _fencingToken);

    /// <summary><see langword="true"/> when this attempt took over an expired lease of an earlier attempt.</summary>
    public bool IsTakeOver { get; private set; }

    /// <summary>The recovery point the earlier attempt committed, where this attempt should resume; <see langword="null"/> when starting fresh.</summary>
    public string? ResumedFrom { get; private set; }

    /// <summary>
    /// <see langword="true"/> for a one-commit execution: nothing was reserved before the operation started, and the
    /// operation reserves the record itself, as the first statement of its own transaction, with
    /// <see cref="ReserveInTransactionAsync"/>, so the reservation, the business writes and the completion commit once.
    /// <see langword="false"/> (the default mode) when the record was reserved, and committed, before the operation started.
    /// </summary>
    public bool IsOneCommit { get; }

    /// <summary>
    /// <see langword="true"/> once this attempt holds a reservation: always in the default mode; in one-commit mode
    /// after <see cref="ReserveInTransactionAsync"/> succeeded (the reservation counts only if that transaction commits).
    /// </summary>
    public bool IsReserved => Volatile.Read(ref _reservationPending) == 0;

    /// <summary>The last recovery point committed (by an earlier attempt or this one).</summary>
    public string? RecoveryPoint { get; private set; }

    /// <summary><see langword="true"/> once the completion or release has been written.</summary>
    public bool IsFinished => Volatile.Read(ref _finished) != 0;

    /// <summary>
    /// <see langword="true"/> once the completion was written inside the operation's own transaction
    /// (<see cref="CompleteInTransactionAsync"/> or <see cref="MarkCompletedInTransaction"/>). It counts only
    /// if that transaction commits: if the operation then fails, the record is released as usual (a rolled-back
    /// completion left it InProgress; a committed one makes the release a refused no-op).
    /// </summary>
    public bool CompletedInTransaction => Volatile.Read(ref _completedInTransaction) != 0;

    /// <summary>
    /// How long the lease lasts from each renewal: the executor's <see cref="IdempotencyExecutor.Lease"/> (its policy's,
    /// else the engine's <see cref="IdempotencyEngineOptions.Lease"/>).
    /// </summary>
    public TimeSpan Lease => _executor.Lease;

    /// <summary>
    /// How long a Completed record lives: the executor's <see cref="IdempotencyExecutor.Expiration"/> (its policy's, else
    /// the engine's <see cref="IdempotencyEngineOptions.Expiration"/>).
    /// </summary>
    public TimeSpan Expiration => _executor.Expiration;

    /// <summary>
    /// Records that the phase <paramref name="recoveryPoint"/> committed, renewing the lease. If this attempt later
    /// fails, the record is kept and a retry resumes at this point instead of starting over.
    /// </summary>
    /// <param name="recoveryPoint">The phase name, for example <c>card-authorised</c>.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="IdempotencyLeaseLostException">The lease was taken over by another attempt: stop now.</exception>
    public async ValueTask SetRecoveryPointAsync(string recoveryPoint, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(recoveryPoint);
        if (IsOneCommit)
        {
            throw new InvalidOperationException(
                $"Idempotency record '{Id}' is reserved in one-commit mode, where nothing is committed before the operation's transaction: " +
                "a recovery point committed on its own cannot exist. Use SetRecoveryPointInTransactionAsync, or the default (two-commit) mode for multi-phase operations.");
        }

        if (!await _executor.SetRecoveryPointAsync(this, recoveryPoint, cancellationToken).ConfigureAwait(false))
        {
            throw new IdempotencyLeaseLostException(Id);
        }

        RecoveryPoint = recoveryPoint;
    }

    /// <summary>
    /// Derives a stable idempotency key for a downstream call (a card network, a bank) from the client's key and the
    /// request's fingerprint, so the same logical operation sends the same key downstream on every attempt and take-over.
    /// Different <paramref name="purpose"/>s give unrelated keys; other tenants or operations never collide; and the same
    /// client key reused later (after a release or expiry) with a different payload derives a different key, so a
    /// downstream system never deduplicates a different operation against this one.
    /// </summary>
    /// <param name="purpose">What the downstream call is, for example <c>card-network/authorise</c>.</param>
    /// <returns>A UUID-formatted key (version 8, name-based on SHA-256).</returns>
    public string DeriveKey(string purpose) => DeriveKey(Id, Fingerprint, purpose);

    /// <summary>Writes the completion (with bounded retries) so later attempts replay <paramref name="response"/>.</summary>
    /// <param name="response">The first answer.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>How the write ended.</returns>
    public async ValueTask<CompletionOutcome> CompleteAsync(IdempotentResponse response, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(response);
        LeaveActive();
        if (!IsReserved)
        {
            // One-commit mode, and the operation never reserved: nothing started, nothing to record.
            MarkFinished();
            return CompletionOutcome.NotRecorded;
        }

        if (!MarkFinished())
        {
            return CompletionOutcome.Completed;
        }

        await StopRenewalAsync().ConfigureAwait(false);
        return await _executor.CompleteAsync(this, response, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Gives the record up after a failure: deleted so a retry executes again, or, when a recovery point was
    /// committed, kept with its lease ended so a retry resumes there at once.
    /// </summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the release is written (failures are logged, not thrown).</returns>
    public async ValueTask ReleaseAsync(CancellationToken cancellationToken = default)
    {
        LeaveActive();
        if (!MarkFinished() || !IsReserved)
        {
            return;
        }

        // Stopped and awaited first, so a renewal in flight cannot extend a lease the release has just ended.
        await StopRenewalAsync().ConfigureAwait(false);
        await _executor.ReleaseAsync(this, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Stops the background lease renewal and waits for a renewal in flight to end. Writes nothing: an attempt disposed
    /// without a completion or release keeps its record InProgress until the lease runs out. Safe to call more than once.
    /// </summary>
    /// <returns>A task that completes when renewal has stopped.</returns>
    public ValueTask DisposeAsync()
    {
        LeaveActive();
        return StopRenewalAsync();
    }

    /// <summary>
    /// Writes the completion inside the operation's own transaction, so the business writes and the stored answer
    /// commit together or not at all. Call it just before committing; afterwards nothing is written again by the engine
    /// and the lease is no longer renewed.
    /// </summary>
    /// <param name="transaction">
    /// The open transaction, on the same database as the store's records, of the store's driver: a
    /// <c>SqliteTransaction</c> for the SQLite store, an <c>NpgsqlTransaction</c> for the PostgreSQL store. The runtime
    /// type decides, so the <see cref="DbTransaction"/> that <c>BeginTransactionAsync()</c> returns can be passed as it is.
    /// </param>
    /// <param name="response">The answer the operation is about to return (build it first, then return exactly it).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="IdempotencyLeaseLostException">The lease was taken over: roll the transaction back.</exception>
    /// <exception cref="InvalidOperationException">
    /// The store cannot write inside a transaction (for example the in-memory store), or <paramref name="transaction"/> is
    /// of another driver or on another database than the store's; the message names what was received and what is needed.
    /// </exception>
    public async ValueTask CompleteInTransactionAsync(DbTransaction transaction, IdempotentResponse response, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(response);
        ThrowIfNotReserved();
        var store = TransactionalStore(transaction);
        var completed = await _executor.ObserveStoreCallAsync(
            StoreCall.CompleteInTransaction,
            Id.Operation,
            static (s, ct) => s.store.TryCompleteAsync(s.transaction, s.Id, s.FencingToken, s.response, s.Expiration, ct),
            (store, transaction, Id, FencingToken, response, Expiration),
            cancellationToken).ConfigureAwait(false);
        if (!completed)
        {
            throw new IdempotencyLeaseLostException(Id);
        }

        MarkCompletedInTransaction();
    }

    /// <summary>
    /// Commits the phase <paramref name="recoveryPoint"/> inside the operation's own transaction, together with that
    /// phase's local writes, renewing the lease.
    /// </summary>
    /// <param name="transaction">The open transaction, on the same database as the store's records, of the store's driver (see <see cref="CompleteInTransactionAsync"/>).</param>
    /// <param name="recoveryPoint">The phase name.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="IdempotencyLeaseLostException">The lease was taken over: roll the transaction back.</exception>
    /// <exception cref="InvalidOperationException">The store cannot write inside <paramref name="transaction"/>; the message says why.</exception>
    public async ValueTask SetRecoveryPointInTransactionAsync(DbTransaction transaction, string recoveryPoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentException.ThrowIfNullOrEmpty(recoveryPoint);
        ThrowIfNotReserved();
        var store = TransactionalStore(transaction);
        var recorded = await _executor.ObserveStoreCallAsync(
            StoreCall.SetRecoveryPointInTransaction,
            Id.Operation,
            static (s, ct) => s.store.TrySetRecoveryPointAsync(s.transaction, s.Id, s.FencingToken, s.recoveryPoint, s.Lease, ct),
            (store, transaction, Id, FencingToken, recoveryPoint, Lease),
            cancellationToken).ConfigureAwait(false);
        if (!recorded)
        {
            throw new IdempotencyLeaseLostException(Id);
        }

        RecoveryPoint = recoveryPoint;
    }

    /// <summary>
    /// One-commit mode: reserves the record inside the operation's own transaction. Call it as the transaction's first
    /// statement, before any business write; then write, call <see cref="CompleteInTransactionAsync"/>, and commit: the
    /// reservation, the business writes and the stored answer become visible together, in one commit, or not at all.
    /// In the default mode (the record was reserved before the operation started) it does nothing, so one handler can
    /// serve both modes.
    /// </summary>
    /// <remarks>
    /// A duplicate of a request whose transaction has not committed yet waits here (at most
    /// <see cref="IdempotencyEngineOptions.ReservationLockTimeout"/>). Do not catch
    /// <see cref="IdempotencyReservationConflictException"/>: let it leave the handler, so the transaction is rolled back
    /// and disposed, and the idempotency middleware (or the caller of <see cref="IdempotencyExecutor.BeginOneCommitAsync"/>)
    /// answers the duplicate with the stored answer, a key-reuse refusal or an in-progress refusal.
    /// </remarks>
    /// <param name="transaction">The open transaction, on the same database as the store's records, of the store's driver (see <see cref="CompleteInTransactionAsync"/>).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the record is reserved inside <paramref name="transaction"/>.</returns>
    /// <exception cref="IdempotencyReservationConflictException">
    /// The key is held: the operation completed (replay it), was used for another payload, or is still running
    /// elsewhere (the wait ran out). Stop and roll back; the transaction may already be unusable.
    /// </exception>
    /// <exception cref="InvalidOperationException">The store cannot reserve inside a transaction, <paramref name="transaction"/> is of another driver or database, or the record was already reserved.</exception>
    public async ValueTask ReserveInTransactionAsync(DbTransaction transaction, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        if (!IsOneCommit)
        {
            return;
        }

        if (IsReserved)
        {
            throw new InvalidOperationException($"Idempotency record '{Id}' is already reserved by this attempt: call ReserveInTransactionAsync once, as the transaction's first statement.");
        }

        var store = TransactionalStore(transaction);
        var options = _executor.Options;
        Volatile.Write(ref _reservationSentAt, _executor.Clock.GetTimestamp());
        var result = await _executor.ObserveStoreCallAsync(
            StoreCall.ReserveInTransaction,
            Id.Operation,
            static (s, ct) => s.store.TryReserveAsync(s.transaction, s.Id, s.Fingerprint, s.Lease, s.Expiration, s.options.ReservationLockTimeout, ct),
            (store, transaction, Id, Fingerprint, Lease, Expiration, options),
            cancellationToken,
            static r => IdempotencyInstrumentation.DescribeReservation(r.Outcome)).ConfigureAwait(false);
        if (!result.MustExecute)
        {
            throw _executor.ReservationConflict(Id, result);
        }

        var record = result.Record!;
        Volatile.Write(ref _fencingToken, record.FencingToken);
        IsTakeOver = result.Outcome == ReservationOutcome.TakenOver;
        ResumedFrom = record.RecoveryPoint;
        RecoveryPoint = record.RecoveryPoint;
        Volatile.Write(ref _reservationPending, 0);
    }

    /// <summary>
    /// Low-level hook for integrations that stage the completion in the operation's transaction themselves (for example
    /// an EF Core <c>DbContext</c> saved by the application's own <c>SaveChangesAsync</c>): tells the engine not to write
    /// the completion again, and stops renewing the lease.
    /// </summary>
    public void MarkCompletedInTransaction()
    {
        Interlocked.Exchange(ref _completedInTransaction, 1);
        SignalRenewalStop();
    }

    /// <summary>
    /// One-commit mode: <see langword="true"/> while this attempt's reservation, had its transaction committed it, could
    /// not have been taken over yet: less than one lease has passed since it was sent (the store's take-over needs the
    /// lease to have run out on the store's clock, which cannot have advanced further than the engine's meanwhile).
    /// One-commit reservations are not renewed, so no later renewal changes this.
    /// </summary>
    internal bool ReservationCannotBeTakenOverYet
    {
        get
        {
            var sentAt = Volatile.Read(ref _reservationSentAt);
            return IsOneCommit && sentAt != 0 && _executor.Clock.GetElapsedTime(sentAt) < Lease;
        }
    }

    /// <summary>
    /// One-commit mode: after the operation threw <paramref name="failure"/>, asks the store whether it is a transient
    /// failure of its database (<see cref="ITransactionalIdempotencyStore.IsTransientFailure"/>). When it is, the
    /// operation's transaction committed nothing: whatever the attempt may still hold is released (a no-op when its
    /// reservation rolled back), event 1044 is logged, and <see langword="true"/> tells the caller to answer as for an
    /// unreachable store (decision-table row 13: <c>503</c> with <c>Retry-After</c>), so the client's retry runs the
    /// operation once. Returns <see langword="false"/>, doing nothing, for any other failure (it surfaces as the error it
    /// is) and in the default mode.
    /// </summary>
    internal async ValueTask<bool> ReleaseAfterTransientFailureAsync(Exception failure)
    {
        if (!IsOneCommit || _executor.Store is not ITransactionalIdempotencyStore store || !store.IsTransientFailure(failure))
        {
            return false;
        }

        _executor.LogTransientFailure(this, failure);
        await ReleaseAsync(CancellationToken.None).ConfigureAwait(false);
        return true;
    }

    /// <summary>Starts renewing the lease every <paramref name="interval"/> until stopped.</summary>
    internal void StartRenewal(TimeSpan interval)
    {
        _renewalGate = new Lock();

        // The timer must not carry the request's ambient state (activity, HTTP context accessors) around with it.
        using (ExecutionContext.SuppressFlow())
        {
            _renewalTimer = _executor.Clock.CreateTimer(static state => ((IdempotencyExecution)state!).OnRenewalDue(), this, interval, interval);
        }
    }

    /// <summary><see langword="true"/> once renewal was asked to stop, or the attempt is over.</summary>
    internal bool RenewalStopped => IsFinished || CompletedInTransaction || Volatile.Read(ref _renewalStopped);

    private void OnRenewalDue()
    {
        lock (_renewalGate!)
        {
            // One renewal at a time: a slow store call is not overtaken by the next tick.
            if (_renewalStopped || _renewalInFlight is { IsCompleted: false })
            {
                return;
            }

            _renewalInFlight = RenewOnceAsync();
        }
    }

    private async Task RenewOnceAsync()
    {
        // The store call itself is not canceled by a stop: stopping waits for it, so it ends before any completion or
        // release is written.
        if (!await _executor.RenewLeaseAsync(this).ConfigureAwait(false))
        {
            SignalRenewalStop();
        }
    }

    private void SignalRenewalStop()
    {
        if (_renewalGate is not { } gate)
        {
            return;
        }

        lock (gate)
        {
            Volatile.Write(ref _renewalStopped, true);
            _renewalTimer?.Dispose();
            _renewalTimer = null;
        }
    }

    private ValueTask StopRenewalAsync()
    {
        if (_renewalGate is not { } gate)
        {
            return ValueTask.CompletedTask;
        }

        Task? inFlight;
        lock (gate)
        {
            Volatile.Write(ref _renewalStopped, true);
            _renewalTimer?.Dispose();
            _renewalTimer = null;
            inFlight = _renewalInFlight;
        }

        return inFlight is null || inFlight.IsCompleted ? ValueTask.CompletedTask : new ValueTask(inFlight);
    }

    internal static string DeriveKey(IdempotencyRecordId id, string fingerprint, string purpose)
    {
        ArgumentException.ThrowIfNullOrEmpty(purpose);
        var material = Encoding.UTF8.GetBytes($"oncely-derived-key/v2\n{id.Tenant.Length}:{id.Tenant}\n{id.Operation.Length}:{id.Operation}\n{id.Key.Length}:{id.Key}\n{fingerprint.Length}:{fingerprint}\n{purpose}");
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(material, hash);
        var bytes = hash[..16];
        bytes[6] = (byte)((bytes[6] & 0x0F) | 0x80); // version 8
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80); // RFC 9562 variant
        return new Guid(bytes, bigEndian: true).ToString("D");
    }

    private void ThrowIfNotReserved()
    {
        if (!IsReserved)
        {
            throw new InvalidOperationException(
                $"Idempotency record '{Id}' belongs to a one-commit endpoint and is not reserved yet: call ReserveInTransactionAsync(transaction) as the transaction's first statement.");
        }
    }

    private bool MarkFinished() => Interlocked.Exchange(ref _finished, 1) == 0;

    // The attempt stops counting as running at its completion, its release or its disposal, whichever comes first.
    private void LeaveActive()
    {
        if (Interlocked.Exchange(ref _active, 0) == 1)
        {
            _executor.Instrumentation.LeaveExecution(Id.Operation);
        }
    }

    private ITransactionalIdempotencyStore TransactionalStore(DbTransaction transaction)
        => _executor.Store as ITransactionalIdempotencyStore
            ?? throw new InvalidOperationException(
                $"The idempotency store {_executor.Store.GetType().Name} cannot write inside a transaction (received a {transaction.GetType().FullName}). " +
                "Transactional completion needs a SQL store on the same database as the transaction: UseSqlite with a SqliteTransaction, or UsePostgreSql with an NpgsqlTransaction.");
}

/// <summary>Thrown when an attempt's lease was taken over by another attempt, so it must not write anything more.</summary>
public sealed class IdempotencyLeaseLostException : Exception
{
    /// <summary>Creates the exception.</summary>
    public IdempotencyLeaseLostException()
        : base("The idempotency lease was taken over by another attempt.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">What happened.</param>
    public IdempotencyLeaseLostException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    /// <param name="message">What happened.</param>
    /// <param name="innerException">The cause.</param>
    public IdempotencyLeaseLostException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    internal IdempotencyLeaseLostException(IdempotencyRecordId id)
        : base($"The lease on idempotency record '{id}' was taken over by another attempt; this attempt must stop.")
    {
    }
}
