using System.Data.Common;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;

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
public sealed partial class IdempotencyExecution : IAsyncDisposable, IRenewableLease
{
    // The attempt makes its own transitions (complete, release, renew, recovery point) through its executor's
    // ExecutionRuntime: store calls, settings, completion retries, logger. It never calls back into the executor.
    private readonly ExecutionRuntime _runtime;
    private long _fencingToken;
    private int _reservationPending;
    private int _finished;
    private int _completedInTransaction;
    // One-commit mode: the engine clock's timestamp taken just before the reservation was sent (0 until then).
    private long _reservationSentAt;
    // 1 while this attempt is counted in oncely.active_executions (only while a listener is attached).
    private int _active;
    // Renews the lease while the attempt runs (null when renewal is off, and in one-commit mode).
    private readonly LeaseRenewal? _renewal;

    // The default mode: the record was reserved (and committed) before the operation starts; renewal starts now.
    internal IdempotencyExecution(ExecutionRuntime runtime, IdempotencyRecord record, bool isTakeOver)
    {
        _runtime = runtime;
        Id = record.Id;
        Fingerprint = record.Fingerprint;
        _fencingToken = record.FencingToken;
        IsTakeOver = isTakeOver;
        ResumedFrom = record.RecoveryPoint;
        RecoveryPoint = record.RecoveryPoint;
        _active = runtime.Store.Instrumentation.EnterExecution(Id.Operation) ? 1 : 0;
        if (runtime.Options.RenewLease)
        {
            _renewal = LeaseRenewal.Start(this, runtime.Clock, runtime.Settings.RenewalInterval);
        }
    }

    // One-commit mode: nothing is reserved yet; ReserveInTransactionAsync reserves inside the operation's transaction.
    internal IdempotencyExecution(ExecutionRuntime runtime, IdempotencyRecordId id, string fingerprint)
    {
        _runtime = runtime;
        Id = id;
        Fingerprint = fingerprint;
        IsOneCommit = true;
        _reservationPending = 1;
        _active = runtime.Store.Instrumentation.EnterExecution(Id.Operation) ? 1 : 0;
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
    public TimeSpan Lease => _runtime.Settings.Lease;

    /// <summary>
    /// How long a Completed record lives: the executor's <see cref="IdempotencyExecutor.Expiration"/> (its policy's, else
    /// the engine's <see cref="IdempotencyEngineOptions.Expiration"/>).
    /// </summary>
    public TimeSpan Expiration => _runtime.Settings.Expiration;

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

        bool recorded;
        try
        {
            recorded = await _runtime.Store.CallAsync(
                StoreCall.SetRecoveryPoint,
                Id.Operation,
                static (store, s, ct) => store.TrySetRecoveryPointAsync(s.execution.Id, s.execution.FencingToken, s.recoveryPoint, s.execution.Lease, ct),
                (execution: this, recoveryPoint),
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (StoreInvoker.IsStoreFailure(ex, cancellationToken))
        {
            throw ex as IdempotencyStoreUnavailableException ?? new IdempotencyStoreUnavailableException("Recording the recovery point failed.", ex);
        }

        if (!recorded)
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
    public ValueTask<CompletionOutcome> CompleteAsync(IdempotentResponse response, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(response);
        LeaveActive();
        if (!IsReserved)
        {
            // One-commit mode, and the operation never reserved: nothing started, nothing to record.
            MarkFinished();
            return ValueTask.FromResult(CompletionOutcome.NotRecorded);
        }

        if (!MarkFinished())
        {
            return ValueTask.FromResult(CompletionOutcome.Completed);
        }

        // Renewal has almost always nothing in flight: the completion is then written without a state machine of its own.
        var stopping = StopRenewalAsync();
        response = ForStore(response);
        return stopping.IsCompletedSuccessfully ? WriteCompletionAsync(response, cancellationToken) : WriteCompletionAfterAsync(stopping, response, cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<CompletionOutcome> WriteCompletionAfterAsync(ValueTask stopping, IdempotentResponse response, CancellationToken cancellationToken)
    {
        await stopping.ConfigureAwait(false);
        return await WriteCompletionAsync(response, cancellationToken).ConfigureAwait(false);
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
        await WriteReleaseAsync(cancellationToken).ConfigureAwait(false);
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
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask CompleteInTransactionAsync(DbTransaction transaction, IdempotentResponse response, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(response);
        var completed = await WriteInTransactionAsync(
            StoreCall.CompleteInTransaction,
            transaction,
            static (store, tx, s, ct) => store.TryCompleteAsync(tx, s.execution.Id, s.execution.FencingToken, s.response, s.execution.Expiration, ct),
            (execution: this, response: ForStore(response)),
            cancellationToken).ConfigureAwait(false);
        if (!completed)
        {
            throw new IdempotencyLeaseLostException(Id);
        }

        MarkCompletedInTransaction();
    }

    /// <summary>
    /// Writes the completion inside the operation's own transaction and commits that transaction, in one round trip
    /// where the store can (PostgreSQL sends the completion and <c>COMMIT</c> as one batch): use it instead of
    /// <see cref="CompleteInTransactionAsync"/> followed by the transaction's own commit. Do not commit the transaction
    /// yourself afterwards; dispose it as usual.
    /// </summary>
    /// <param name="transaction">The open transaction, on the same database as the store's records, of the store's driver (see <see cref="CompleteInTransactionAsync"/>).</param>
    /// <param name="response">The answer the operation is about to return (build it first, then return exactly it).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="IdempotencyLeaseLostException">
    /// The lease was taken over: nothing was committed (the transaction is left for you to roll back or dispose), and
    /// the business writes are not applied.
    /// </exception>
    /// <exception cref="InvalidOperationException">The store cannot write inside <paramref name="transaction"/>; the message says why.</exception>
    /// <remarks>
    /// Any other exception leaves it unknown whether the transaction committed, as a failed commit always does: the
    /// engine then treats the completion as possibly committed (<see cref="CompletedInTransaction"/>), so the record is
    /// released only if the commit did not happen, and a retry gets the stored answer if it did.
    /// </remarks>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask CompleteAndCommitAsync(DbTransaction transaction, IdempotentResponse response, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(response);
        bool committed;
        try
        {
            committed = await WriteInTransactionAsync(
                StoreCall.CompleteInTransaction,
                transaction,
                static (store, tx, s, ct) => store.TryCompleteAndCommitAsync(tx, s.execution.Id, s.execution.FencingToken, s.response, s.execution.Expiration, ct),
                (execution: this, response: ForStore(response)),
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not InvalidOperationException and not ArgumentException)
        {
            MarkCompletedInTransaction(); // the commit may have happened
            throw;
        }

        if (!committed)
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
        var recorded = await WriteInTransactionAsync(
            StoreCall.SetRecoveryPointInTransaction,
            transaction,
            static (store, tx, s, ct) => store.TrySetRecoveryPointAsync(tx, s.execution.Id, s.execution.FencingToken, s.recoveryPoint, s.execution.Lease, ct),
            (execution: this, recoveryPoint),
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
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ReserveInTransactionAsync(DbTransaction transaction, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        if (!IsOneCommit)
        {
            return;
        }

        var store = StartReservation(transaction);
        var options = _runtime.Options;
        var result = await _runtime.Store.ObserveAsync(
            StoreCall.ReserveInTransaction,
            Id.Operation,
            static (s, ct) => s.store.TryReserveAsync(s.transaction, s.Id, s.Fingerprint, s.Lease, s.Expiration, s.options.ReservationLockTimeout, ct),
            (store, transaction, Id, Fingerprint, Lease, Expiration, options),
            cancellationToken,
            static r => IdempotencyInstrumentation.DescribeReservation(r.Outcome)).ConfigureAwait(false);
        Reserved(result);
    }

    /// <summary>
    /// One-commit mode: reserves the record and runs the transaction's first statements, <paramref name="batch"/>, in one
    /// round trip where the store's driver can (PostgreSQL: the reservation goes to the server in front of the batch's
    /// commands, as one <c>NpgsqlBatch</c>). It is <see cref="ReserveInTransactionAsync"/> followed by
    /// <c>batch.ExecuteNonQueryAsync()</c> with one round trip fewer: use it for the transaction's first writes. In the
    /// default mode (the record was reserved before the operation started) it only executes <paramref name="batch"/>.
    /// </summary>
    /// <remarks>
    /// <para>
    /// The batch runs on <see cref="DbBatch.Transaction"/>, which must be set, and is left as it was given (the store's
    /// commands are taken out again). Its commands must not return rows the operation needs: only the number of rows they
    /// changed comes back. To read rows in the first statements, call <see cref="ReserveInTransactionAsync"/> and then
    /// run them.
    /// </para>
    /// <para>
    /// When the key turns out to be held (a duplicate raced this request past the read before the transaction), the
    /// batch's commands may have run inside the transaction before the store knew: nothing of them can commit, because
    /// <see cref="IdempotencyReservationConflictException"/> is thrown and the transaction is rolled back when it is
    /// disposed. If one of the batch's commands failed because of the duplicate (a unique index on the key, say), the
    /// conflict is reported the same way and the duplicate is answered from the record after the rollback. Do not
    /// catch <see cref="IdempotencyReservationConflictException"/>.
    /// </para>
    /// </remarks>
    /// <param name="batch">The transaction's first statements, on the transaction of the store's driver and database.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The number of rows the batch's commands changed.</returns>
    /// <exception cref="IdempotencyReservationConflictException">The key is held, as for <see cref="ReserveInTransactionAsync"/>.</exception>
    /// <exception cref="InvalidOperationException">
    /// <paramref name="batch"/> has no transaction, the store cannot reserve inside a transaction, the transaction is of
    /// another driver or database, or the record was already reserved.
    /// </exception>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<int> ReserveAndExecuteAsync(DbBatch batch, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (!IsOneCommit)
        {
            return await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        var transaction = batch.Transaction
            ?? throw new InvalidOperationException($"The batch for idempotency record '{Id}' has no transaction: set DbBatch.Transaction to the operation's open transaction, so the reservation and the statements commit together.");
        var store = StartReservation(transaction);
        var options = _runtime.Options;
        var result = await _runtime.Store.ObserveAsync(
            StoreCall.ReserveInTransaction,
            Id.Operation,
            static (s, ct) => s.store.TryReserveAndExecuteAsync(s.batch, s.Id, s.Fingerprint, s.Lease, s.Expiration, s.options.ReservationLockTimeout, ct),
            (store, batch, Id, Fingerprint, Lease, Expiration, options),
            cancellationToken,
            static r => IdempotencyInstrumentation.DescribeReservation(r.Reservation.Outcome)).ConfigureAwait(false);
        Reserved(result.Reservation);
        return result.RecordsAffected;
    }

    /// <summary>The checks before a one-commit reservation, and the moment it is sent (for <see cref="ReservationCannotBeTakenOverYet"/>).</summary>
    private ITransactionalIdempotencyStore StartReservation(DbTransaction transaction)
    {
        if (IsReserved)
        {
            throw new InvalidOperationException($"Idempotency record '{Id}' is already reserved by this attempt: call ReserveInTransactionAsync (or ReserveAndExecuteAsync) once, as the transaction's first statement.");
        }

        var store = TransactionalStore(transaction);
        Volatile.Write(ref _reservationSentAt, _runtime.Clock.GetTimestamp());
        return store;
    }

    /// <summary>Takes a one-commit reservation's answer: holds the record, or throws the conflict for the caller to answer.</summary>
    private void Reserved(TransactionalReservationResult result)
    {
        if (!result.MustExecute)
        {
            throw new IdempotencyReservationConflictException(Id, DecisionMapping.FromRefusedReservation(result.Outcome), result.Record);
        }

        var record = result.Record!;
        Volatile.Write(ref _fencingToken, record.FencingToken);
        IsTakeOver = result.Outcome == ReservationOutcome.TakenOver;
        ResumedFrom = record.RecoveryPoint;
        RecoveryPoint = record.RecoveryPoint;
        Volatile.Write(ref _reservationPending, 0);
    }

    /// <summary>
    /// What the store keeps of <paramref name="response"/>: minimised (<see cref="IdempotencyEngineOptions.StoreSuccessfulResponseBodies"/>)
    /// and sealed (stored-answer protection) as configured. Every completion path goes through it, integrations that stage
    /// the completion themselves (EF Core) included.
    /// </summary>
    internal IdempotentResponse ForStore(IdempotentResponse response) => _runtime.ForStore(Id, response);

    /// <summary>
    /// Low-level hook for integrations that stage the completion in the operation's transaction themselves (for example
    /// an EF Core <c>DbContext</c> saved by the application's own <c>SaveChangesAsync</c>): tells the engine not to write
    /// the completion again, and stops renewing the lease.
    /// </summary>
    public void MarkCompletedInTransaction()
    {
        Interlocked.Exchange(ref _completedInTransaction, 1);
        _renewal?.SignalStop();
    }

    /// <summary>
    /// One-commit mode: <see langword="true"/> while this attempt's reservation, had its transaction committed it, could
    /// not have been taken over yet: less than one lease has passed since it was sent (the store's take-over needs the
    /// lease to have run out on the store's clock, which cannot have advanced further than the engine's meanwhile).
    /// One-commit reservations are not renewed, so no later renewal changes this.
    /// </summary>
    private bool ReservationCannotBeTakenOverYet
    {
        get
        {
            var sentAt = Volatile.Read(ref _reservationSentAt);
            return IsOneCommit && sentAt != 0 && _runtime.Clock.GetElapsedTime(sentAt) < Lease;
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
        if (!IsOneCommit || _runtime.Store.Store is not ITransactionalIdempotencyStore store || !store.IsTransientFailure(failure))
        {
            return false;
        }

        LogOneCommitTransientFailure(_runtime.Logger, IdempotencyRedaction.Exception(failure), _runtime.Redaction.Tenant(Id.Tenant), IdempotencyRedaction.Text(Id.Operation), _runtime.Redaction.Key(Id.Key));
        await ReleaseAsync(CancellationToken.None).ConfigureAwait(false);
        return true;
    }

    /// <summary><see langword="true"/> once renewal was asked to stop, or the attempt is over.</summary>
    private bool RenewalStopped => IsFinished || CompletedInTransaction || (_renewal?.IsStopped ?? false);

    /// <summary>
    /// Renews the lease once (called by <see cref="LeaseRenewal"/>). Never throws: <see langword="false"/> when the store
    /// refused (the token is stale or the record is no longer InProgress), so renewal stops; a store failure is logged
    /// and returns <see langword="true"/>, so the next interval tries again while the lease still runs.
    /// </summary>
    async ValueTask<bool> IRenewableLease.RenewOnceAsync()
    {
        try
        {
            var renewed = await _runtime.Store.CallAsync(
                StoreCall.RenewLease,
                Id.Operation,
                static (store, e, ct) => store.TryRenewLeaseAsync(e.Id, e.FencingToken, e.Lease, ct),
                this,
                CancellationToken.None).ConfigureAwait(false);
            if (!renewed && !RenewalStopped)
            {
                LogLeaseRenewalRefused(_runtime.Logger, _runtime.Redaction.Tenant(Id.Tenant), IdempotencyRedaction.Text(Id.Operation), _runtime.Redaction.Key(Id.Key), FencingToken);
            }

            return renewed;
        }
        catch (Exception ex)
        {
            LogLeaseRenewalFailed(_runtime.Logger, IdempotencyRedaction.Exception(ex), _runtime.Redaction.Tenant(Id.Tenant), IdempotencyRedaction.Text(Id.Operation), _runtime.Redaction.Key(Id.Key), Lease);
            return true;
        }
    }

    // Row 10 (stored), row 12 (a stale token is refused) and row 17 (retried briefly, then left InProgress, never released).
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<CompletionOutcome> WriteCompletionAsync(IdempotentResponse response, CancellationToken cancellationToken)
    {
        try
        {
            bool completed;
            try
            {
                // The first attempt goes to the store directly: almost every completion succeeds at once, and the retry
                // pipeline's own work (its context, outcome and, for a store that answers asynchronously, its state
                // machines) is then spent only on the rare failure.
                cancellationToken.ThrowIfCancellationRequested();
                completed = await CompleteOnceAsync(this, response, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception first) when (_runtime.Options.CompletionRetries > 0)
            {
                completed = await RetryCompletionAsync(first, response, cancellationToken).ConfigureAwait(false);
            }

            if (!completed && IsOneCommit && await IsGoneAsync().ConfigureAwait(false))
            {
                LogReservationNotCommitted(_runtime.Logger, _runtime.Redaction.Tenant(Id.Tenant), IdempotencyRedaction.Text(Id.Operation), _runtime.Redaction.Key(Id.Key));
                return CompletionOutcome.NotRecorded;
            }

            if (!completed)
            {
                LogLeaseLost(_runtime.Logger, _runtime.Redaction.Tenant(Id.Tenant), IdempotencyRedaction.Text(Id.Operation), _runtime.Redaction.Key(Id.Key), FencingToken);
                return CompletionOutcome.LeaseLost;
            }

            if (_runtime.Logger.IsEnabled(LogLevel.Debug))
            {
                LogExecuted(_runtime.Logger, _runtime.Redaction.Tenant(Id.Tenant), IdempotencyRedaction.Text(Id.Operation), _runtime.Redaction.Key(Id.Key), response.StatusCode);
            }

            return CompletionOutcome.Completed;
        }
        catch (Exception ex) when (StoreInvoker.IsStoreFailure(ex, cancellationToken))
        {
            LogCompletionFailed(_runtime.Logger, IdempotencyRedaction.Exception(ex), _runtime.Redaction.Tenant(Id.Tenant), IdempotencyRedaction.Text(Id.Operation), _runtime.Redaction.Key(Id.Key), Lease);
            return CompletionOutcome.StoreFailed;
        }
    }

    private static ValueTask<bool> CompleteOnceAsync(IdempotencyExecution execution, IdempotentResponse response, CancellationToken cancellationToken)
        => execution._runtime.Store.CallAsync(
            StoreCall.Complete,
            execution.Id.Operation,
            static (store, s, ct) => store.TryCompleteAsync(s.execution.Id, s.execution.FencingToken, s.response, s.execution.Expiration, ct),
            (execution, response),
            cancellationToken);

    // The first attempt failed with `first`: the retry pipeline runs as if it had made that attempt itself (its first
    // call rethrows the failure, so the pipeline's rule decides whether to retry, and its delays and count of retries are
    // exactly those configured), then retries against the store.
    private async ValueTask<bool> RetryCompletionAsync(Exception first, IdempotentResponse response, CancellationToken cancellationToken)
    {
        var pending = ExceptionDispatchInfo.Capture(first);
        return await _runtime.CompletionRetries.ExecuteAsync(
            (ct) =>
            {
                if (Interlocked.Exchange(ref pending, null) is { } failure)
                {
                    failure.Throw();
                }

                return CompleteOnceAsync(this, response, ct);
            },
            cancellationToken).ConfigureAwait(false);
    }

    // Row 11: deleted, or kept at its recovery point with the lease ended. A failure is logged, not thrown.
    private async ValueTask WriteReleaseAsync(CancellationToken cancellationToken)
    {
        try
        {
            var released = await _runtime.Store.CallAsync(
                StoreCall.Release,
                Id.Operation,
                static (store, e, ct) => store.TryReleaseAsync(e.Id, e.FencingToken, ct),
                this,
                cancellationToken).ConfigureAwait(false);
            if (released)
            {
                LogReleased(_runtime.Logger, _runtime.Redaction.Tenant(Id.Tenant), IdempotencyRedaction.Text(Id.Operation), _runtime.Redaction.Key(Id.Key), PrimaryAccountNumbers.MaskNullable(RecoveryPoint));
            }
            else
            {
                await LogReleaseRefusedAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (StoreInvoker.IsStoreFailure(ex, cancellationToken))
        {
            LogReleaseFailed(_runtime.Logger, IdempotencyRedaction.Exception(ex), _runtime.Redaction.Tenant(Id.Tenant), IdempotencyRedaction.Text(Id.Operation), _runtime.Redaction.Key(Id.Key), Lease);
        }
    }

    // A refused release has three causes with very different meanings: the operation's own transaction already
    // completed the record (expected, for example when the client hung up after the commit), the record is gone
    // (expired or purged), or another attempt took the lease over. One read, on this rare path only, tells which.
    private async ValueTask LogReleaseRefusedAsync(CancellationToken cancellationToken)
    {
        var logger = _runtime.Logger;
        IdempotencyRecord? current;
        try
        {
            current = await _runtime.Store.GetAsync(Id, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (StoreInvoker.IsStoreFailure(ex, cancellationToken))
        {
            LogReleaseFailed(logger, IdempotencyRedaction.Exception(ex), _runtime.Redaction.Tenant(Id.Tenant), IdempotencyRedaction.Text(Id.Operation), _runtime.Redaction.Key(Id.Key), Lease);
            return;
        }

        if (current is null && IsOneCommit)
        {
            LogReservationNotCommitted(logger, _runtime.Redaction.Tenant(Id.Tenant), IdempotencyRedaction.Text(Id.Operation), _runtime.Redaction.Key(Id.Key));
        }
        else if (current is not null && IsAnotherAttemptsRecord(current) && ReservationCannotBeTakenOverYet)
        {
            // One-commit mode: the record is another attempt's, and this attempt's reservation, had it committed, could
            // not have been taken over yet (less than a lease ago). So it never committed: it rolled back with its
            // transaction (typically the client hung up), and the key was reserved afresh. No lease was lost.
            LogOneCommitReservationRolledBack(logger, _runtime.Redaction.Tenant(Id.Tenant), IdempotencyRedaction.Text(Id.Operation), _runtime.Redaction.Key(Id.Key), FencingToken, current.FencingToken, current.State);
        }
        else if (current is null)
        {
            LogReleaseRefusedGone(logger, _runtime.Redaction.Tenant(Id.Tenant), IdempotencyRedaction.Text(Id.Operation), _runtime.Redaction.Key(Id.Key), FencingToken);
        }
        else if (current.State == IdempotencyRecordState.Completed && current.FencingToken == FencingToken)
        {
            LogReleaseRefusedCompleted(logger, _runtime.Redaction.Tenant(Id.Tenant), IdempotencyRedaction.Text(Id.Operation), _runtime.Redaction.Key(Id.Key), FencingToken);
        }
        else
        {
            LogLeaseLost(logger, _runtime.Redaction.Tenant(Id.Tenant), IdempotencyRedaction.Text(Id.Operation), _runtime.Redaction.Key(Id.Key), FencingToken);
        }
    }

    // One-commit mode: a record this attempt did not write. Another token; or a Completed record although this attempt
    // never completed in its transaction (a store whose token counter rolls back with the transaction, as SQLite's does,
    // hands the rolled-back token to the next reservation).
    private bool IsAnotherAttemptsRecord(IdempotencyRecord current)
        => IsOneCommit
            && !CompletedInTransaction
            && (current.FencingToken != FencingToken || current.State == IdempotencyRecordState.Completed);

    // One-commit mode, after a refused completion: true when the record does not exist (its reservation rolled back).
    private async ValueTask<bool> IsGoneAsync()
    {
        try
        {
            return await _runtime.Store.GetAsync(Id, CancellationToken.None).ConfigureAwait(false) is null;
        }
        catch (Exception ex) when (StoreInvoker.IsStoreFailure(ex, CancellationToken.None))
        {
            return false;
        }
    }

    // A write inside the operation's own transaction: needs the reservation, and a store of the transaction's driver.
    private ValueTask<bool> WriteInTransactionAsync<TState>(
        StoreCall call,
        DbTransaction transaction,
        Func<ITransactionalIdempotencyStore, DbTransaction, TState, CancellationToken, ValueTask<bool>> write,
        TState state,
        CancellationToken cancellationToken)
    {
        ThrowIfNotReserved();
        var store = TransactionalStore(transaction);
        return _runtime.Store.ObserveAsync(
            call,
            Id.Operation,
            static (s, ct) => s.write(s.store, s.transaction, s.state, ct),
            (store, transaction, write, state),
            cancellationToken);
    }

    private ValueTask StopRenewalAsync() => _renewal?.StopAsync() ?? ValueTask.CompletedTask;

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
            _runtime.Store.Instrumentation.LeaveExecution(Id.Operation);
        }
    }

    private ITransactionalIdempotencyStore TransactionalStore(DbTransaction transaction)
        => _runtime.Store.Store as ITransactionalIdempotencyStore
            ?? throw new InvalidOperationException(
                $"The idempotency store {_runtime.Store.Store.GetType().Name} cannot write inside a transaction (received a {transaction.GetType().FullName}). " +
                "Transactional completion needs a SQL store on the same database as the transaction: UseSqlite with a SqliteTransaction, or UsePostgreSql with an NpgsqlTransaction.");
}
