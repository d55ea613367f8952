using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Polly;
using Polly.Retry;

namespace Oncely;

/// <summary>
/// Runs "reserve, execute, then complete or release" against a store, with no dependency on any transport. The ASP.NET
/// Core middleware is built on it; message consumers and webhook receivers call <see cref="ExecuteAsync"/> directly with
/// <c>(tenant, operation, message id)</c>.
/// </summary>
public sealed partial class IdempotencyExecutor
{
    private readonly IIdempotencyStore _store;
    private readonly IdempotencyEngineOptions _options;
    private readonly OperationSettings _settings;
    private readonly TimeProvider _clock;
    private readonly ILogger _logger;
    private readonly IdempotencyInstrumentation _instrumentation;
    [ThreadStatic]
    private static CancellationTokenSource? t_spareSource;

    private readonly ResiliencePipeline<bool> _completionPipeline;

    /// <summary>Creates an executor.</summary>
    /// <param name="store">Where records live.</param>
    /// <param name="options">The engine settings; validated here.</param>
    /// <param name="timeProvider">The clock for timeouts and retry delays; defaults to <see cref="TimeProvider.System"/>.</param>
    /// <param name="logger">Where events go; defaults to none.</param>
    /// <param name="meterFactory">
    /// Creates the <c>Oncely</c> meter the executor's metrics are recorded on (see <see cref="IdempotencyDiagnostics"/>);
    /// pass the application's (from DI). Defaults to <see langword="null"/>: a meter shared by the whole process.
    /// </param>
    /// <exception cref="ArgumentException">The options are invalid; the message says what to change.</exception>
    public IdempotencyExecutor(IIdempotencyStore store, IdempotencyEngineOptions options, TimeProvider? timeProvider = null, ILogger<IdempotencyExecutor>? logger = null, IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        var problems = options.Validate();
        if (problems.Count > 0)
        {
            throw new ArgumentException(string.Join(Environment.NewLine, problems), nameof(options));
        }

        _store = store;
        _options = options;
        _settings = OperationSettings.From(options);
        _clock = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _instrumentation = new IdempotencyInstrumentation(meterFactory, store.GetType().Name);
        _completionPipeline = options.CompletionRetries == 0 ? ResiliencePipeline<bool>.Empty : new ResiliencePipelineBuilder<bool> { TimeProvider = _clock }
            .AddRetry(new RetryStrategyOptions<bool>
            {
                ShouldHandle = new PredicateBuilder<bool>().Handle<Exception>(e => e is not OperationCanceledException || e is TimeoutException),
                MaxRetryAttempts = options.CompletionRetries,
                Delay = options.CompletionRetryDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
            })
            .Build();
    }

    // WithPolicy: the same store, clock, logger and completion retries; another lease, expiration and in-progress wait.
    private IdempotencyExecutor(IdempotencyExecutor engine, IdempotencyPolicy policy)
    {
        _store = engine._store;
        _options = engine._options;
        _clock = engine._clock;
        _logger = engine._logger;
        _completionPipeline = engine._completionPipeline;
        _instrumentation = engine._instrumentation;
        _settings = OperationSettings.From(engine._options, policy);
        Policy = policy;
    }

    /// <summary>
    /// An executor for one kind of operation: it shares this executor's store, clock, logger and store-call settings,
    /// and runs every operation with <paramref name="policy"/>'s lease, expiration and in-progress wait (the engine's
    /// where the policy leaves one unset). Create it once per kind of operation and keep it; creating it costs a check of
    /// the policy, nothing else.
    /// </summary>
    /// <param name="policy">The operation's settings. Read now: later changes to it are not seen.</param>
    /// <returns>A new executor bound to <paramref name="policy"/>.</returns>
    /// <exception cref="ArgumentException">The policy yields unusable settings; the message says what to change.</exception>
    public IdempotencyExecutor WithPolicy(IdempotencyPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        return new IdempotencyExecutor(this, policy);
    }

    /// <summary>The policy this executor applies (<see cref="WithPolicy"/>), or <see langword="null"/> for the engine's settings.</summary>
    public IdempotencyPolicy? Policy { get; }

    /// <summary>The store the executor uses.</summary>
    public IIdempotencyStore Store => _store;

    /// <summary>
    /// The engine settings. An executor bound to a policy (<see cref="WithPolicy"/>) uses the policy's lease, expiration
    /// and in-progress wait instead of these (see <see cref="Lease"/> and <see cref="Expiration"/>).
    /// </summary>
    public IdempotencyEngineOptions Options => _options;

    /// <summary>The lease this executor's operations hold: the policy's, else <see cref="IdempotencyEngineOptions.Lease"/>.</summary>
    public TimeSpan Lease => _settings.Lease;

    /// <summary>How long this executor's records live: the policy's, else <see cref="IdempotencyEngineOptions.Expiration"/>.</summary>
    public TimeSpan Expiration => _settings.Expiration;

    /// <summary>The engine's clock (lease renewal timing).</summary>
    internal TimeProvider Clock => _clock;

    /// <summary>The executor's spans and metrics.</summary>
    internal IdempotencyInstrumentation Instrumentation => _instrumentation;

    /// <summary>
    /// Reserves the record or reports what holds it. Never throws for store failures: those come back as
    /// <see cref="IdempotencyDecisionKind.StoreUnavailable"/>.
    /// </summary>
    /// <param name="id">The record: scope and key.</param>
    /// <param name="fingerprint">The request's fingerprint.</param>
    /// <param name="cancellationToken">
    /// Cancels the call (for example, the client went away), including the wait for an InProgress record
    /// (<see cref="IdempotencyEngineOptions.InProgressWait"/>): a cancelled wait throws <see cref="OperationCanceledException"/>
    /// and looks at the store no more.
    /// </param>
    /// <returns>
    /// What to do. For <see cref="IdempotencyDecisionKind.Execute"/>, the decision's execution renews its lease in the
    /// background (unless <see cref="IdempotencyEngineOptions.RenewLease"/> is off) until its completion or release is
    /// written or it is disposed: dispose it (<c>await using</c>) when the attempt is over.
    /// </returns>
    public ValueTask<IdempotencyDecision> BeginAsync(IdempotencyRecordId id, string fingerprint, CancellationToken cancellationToken = default)
        => BeginCoreAsync(id, fingerprint, cancellationToken, cancellationToken);

    /// <summary>
    /// <see cref="BeginAsync"/> whose store calls and whose wait for an InProgress record are cancelled apart: the HTTP
    /// path does not tie a reservation to the client's connection (an abandoned reservation would block retries for a
    /// whole lease), but a duplicate whose client hung up stops waiting (row 7) instead of polling the store for nobody.
    /// </summary>
    /// <param name="id">The record: scope and key.</param>
    /// <param name="fingerprint">The request's fingerprint.</param>
    /// <param name="cancellationToken">Cancels the store calls and the wait.</param>
    /// <param name="waitCancellation">Cancels the wait only (for example, <c>HttpContext.RequestAborted</c>): the wait then throws <see cref="OperationCanceledException"/>.</param>
    /// <returns>What to do; see <see cref="BeginAsync"/>.</returns>
    internal async ValueTask<IdempotencyDecision> BeginCoreAsync(IdempotencyRecordId id, string fingerprint, CancellationToken cancellationToken, CancellationToken waitCancellation)
    {
        ArgumentException.ThrowIfNullOrEmpty(fingerprint);
        IdempotencyInstrumentation.TagKey(id);
        var waitUntil = _settings.InProgressWait > TimeSpan.Zero ? _clock.GetUtcNow() + _settings.InProgressWait : (DateTimeOffset?)null;

        // The wait observes both tokens; a linked source only when they are two different cancellable ones.
        using var linkedWait = waitUntil is not null && cancellationToken.CanBeCanceled && waitCancellation.CanBeCanceled && cancellationToken != waitCancellation
            ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, waitCancellation)
            : null;
        var waitToken = linkedWait?.Token ?? (waitCancellation.CanBeCanceled ? waitCancellation : cancellationToken);
        while (true)
        {
            ReservationResult result;
            try
            {
                result = await CallStoreAsync(
                    StoreCall.Reserve,
                    id.Operation,
                    static (store, state, ct) => store.TryReserveAsync(state.id, state.fingerprint, state.lease, state.expiration, ct),
                    (id, fingerprint, lease: _settings.Lease, expiration: _settings.Expiration),
                    cancellationToken,
                    static r => IdempotencyInstrumentation.DescribeReservation(r.Outcome)).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsStoreFailure(ex, cancellationToken))
            {
                LogStoreUnavailable(_logger, ex, id.Tenant, id.Operation, id.Key);
                return new IdempotencyDecision(IdempotencyDecisionKind.StoreUnavailable, null, null, ex);
            }

            switch (result.Outcome)
            {
                case ReservationOutcome.Acquired:
                    return new IdempotencyDecision(IdempotencyDecisionKind.Execute, result.Record, StartExecution(result.Record, isTakeOver: false), null);
                case ReservationOutcome.TakenOver:
                    LogTakenOver(_logger, id.Tenant, id.Operation, id.Key, result.Record.FencingToken, result.Record.RecoveryPoint);
                    return new IdempotencyDecision(IdempotencyDecisionKind.Execute, result.Record, StartExecution(result.Record, isTakeOver: true), null);
                case ReservationOutcome.Completed:
                    return new IdempotencyDecision(IdempotencyDecisionKind.Replay, result.Record, null, null);
                case ReservationOutcome.FingerprintMismatch:
                    return new IdempotencyDecision(IdempotencyDecisionKind.KeyReused, result.Record, null, null);
                case ReservationOutcome.InProgress:
                default:
                    if (waitUntil is { } deadline && _clock.GetUtcNow() + _options.InProgressPollInterval <= deadline)
                    {
                        // Row 7: a caller that went away stops the wait here; it is not a store failure.
                        await Task.Delay(_options.InProgressPollInterval, _clock, waitToken).ConfigureAwait(false);
                        continue;
                    }

                    LogInProgress(_logger, id.Tenant, id.Operation, id.Key);
                    return new IdempotencyDecision(IdempotencyDecisionKind.InProgress, result.Record, null, null);
            }
        }
    }

    /// <summary>
    /// One-commit mode: decides from a read, without reserving anything. The operation then reserves the record itself,
    /// as the first statement of its own transaction (<see cref="IdempotencyExecution.ReserveInTransactionAsync"/>), so
    /// the reservation, its business writes and its stored answer cost one commit. Never throws for store failures:
    /// those come back as <see cref="IdempotencyDecisionKind.StoreUnavailable"/>.
    /// </summary>
    /// <param name="id">The record: scope and key.</param>
    /// <param name="fingerprint">The request's fingerprint.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>
    /// <see cref="IdempotencyDecisionKind.Replay"/> for a Completed record with this fingerprint (row 6, answered from the
    /// read alone), <see cref="IdempotencyDecisionKind.KeyReused"/> for a record with another fingerprint (row 8), and
    /// otherwise <see cref="IdempotencyDecisionKind.Execute"/> with an execution that holds nothing yet
    /// (<see cref="IdempotencyExecution.IsOneCommit"/>). An InProgress record is left to the reservation in the
    /// transaction, which decides with the store's clock: taken over when its lease expired, refused (row 7) otherwise.
    /// </returns>
    public async ValueTask<IdempotencyDecision> BeginOneCommitAsync(IdempotencyRecordId id, string fingerprint, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(fingerprint);
        IdempotencyInstrumentation.TagKey(id);
        IdempotencyRecord? record;
        try
        {
            record = await CallStoreAsync(StoreCall.Get, id.Operation, static (store, i, ct) => store.GetAsync(i, ct), id, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsStoreFailure(ex, cancellationToken))
        {
            LogStoreUnavailable(_logger, ex, id.Tenant, id.Operation, id.Key);
            return new IdempotencyDecision(IdempotencyDecisionKind.StoreUnavailable, null, null, ex);
        }

        if (record is not null && !string.Equals(record.Fingerprint, fingerprint, StringComparison.Ordinal))
        {
            return new IdempotencyDecision(IdempotencyDecisionKind.KeyReused, record, null, null);
        }

        if (record is { State: IdempotencyRecordState.Completed, Response: not null })
        {
            return new IdempotencyDecision(IdempotencyDecisionKind.Replay, record, null, null);
        }

        return new IdempotencyDecision(IdempotencyDecisionKind.Execute, record, new IdempotencyExecution(this, id, fingerprint), null);
    }

    /// <summary>
    /// One-commit mode, after the operation's transaction was rolled back because its reservation met a held key: what
    /// to answer. Uses the record the conflict carried, or reads it when the transaction could not.
    /// </summary>
    /// <param name="conflict">What <see cref="IdempotencyExecution.ReserveInTransactionAsync"/> threw.</param>
    /// <param name="id">The record.</param>
    /// <param name="fingerprint">The request's fingerprint.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A <see cref="IdempotencyDecisionKind.Replay"/>, <see cref="IdempotencyDecisionKind.KeyReused"/>, <see cref="IdempotencyDecisionKind.InProgress"/> or <see cref="IdempotencyDecisionKind.StoreUnavailable"/> decision.</returns>
    public async ValueTask<IdempotencyDecision> ResolveConflictAsync(IdempotencyReservationConflictException conflict, IdempotencyRecordId id, string fingerprint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(conflict);
        ArgumentException.ThrowIfNullOrEmpty(fingerprint);
        var record = conflict.Record;
        if (record is null)
        {
            try
            {
                record = await CallStoreAsync(StoreCall.Get, id.Operation, static (store, i, ct) => store.GetAsync(i, ct), id, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsStoreFailure(ex, cancellationToken))
            {
                LogStoreUnavailable(_logger, ex, id.Tenant, id.Operation, id.Key);
                return new IdempotencyDecision(IdempotencyDecisionKind.StoreUnavailable, null, null, ex);
            }
        }

        var kind = record switch
        {
            null => IdempotencyDecisionKind.InProgress,
            _ when !string.Equals(record.Fingerprint, fingerprint, StringComparison.Ordinal) => IdempotencyDecisionKind.KeyReused,
            { State: IdempotencyRecordState.Completed, Response: not null } => IdempotencyDecisionKind.Replay,
            _ => IdempotencyDecisionKind.InProgress,
        };
        LogReservationConflict(_logger, id.Tenant, id.Operation, id.Key, kind);
        return new IdempotencyDecision(kind, record, null, null);
    }

    internal IdempotencyReservationConflictException ReservationConflict(IdempotencyRecordId id, TransactionalReservationResult result)
    {
        var kind = result.Outcome switch
        {
            ReservationOutcome.Completed => IdempotencyDecisionKind.Replay,
            ReservationOutcome.FingerprintMismatch => IdempotencyDecisionKind.KeyReused,
            _ => IdempotencyDecisionKind.InProgress,
        };
        return new IdempotencyReservationConflictException(id, kind, result.Record);
    }

    /// <summary>
    /// Runs <paramref name="operation"/> once per record: the first attempt executes and stores its result; later
    /// attempts get the stored result back without running it. For message consumers and webhook receivers.
    /// </summary>
    /// <param name="id">The record: for messages, <c>(tenant, consumer name, message id)</c>.</param>
    /// <param name="fingerprint">The payload's fingerprint (see <see cref="RequestFingerprint"/>), so a different payload under the same id is refused.</param>
    /// <param name="operation">The effect. Its result is stored; throw to release the record so a redelivery runs it again.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>What happened, with the (stored or fresh) result.</returns>
    public async ValueTask<IdempotencyOutcome> ExecuteAsync(
        IdempotencyRecordId id,
        string fingerprint,
        Func<IdempotencyExecution, CancellationToken, ValueTask<IdempotentResponse>> operation,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(operation);
        var attempt = _instrumentation.StartAttempt(id.Operation);
        try
        {
            var decision = await BeginAsync(id, fingerprint, cancellationToken).ConfigureAwait(false);
            attempt?.SetOutcome(IdempotencyOutcomes.For(decision.Kind));
            if (decision.Kind != IdempotencyDecisionKind.Execute)
            {
                return new IdempotencyOutcome(decision.Kind, decision.Record?.Response, null);
            }

            var execution = decision.Execution!;
            await using (execution.ConfigureAwait(false))
            {
                IdempotentResponse response;
                try
                {
                    response = await operation(execution, cancellationToken).ConfigureAwait(false);
                }
                catch
                {
                    await execution.ReleaseAsync(CancellationToken.None).ConfigureAwait(false);
                    attempt?.SetOutcome(IdempotencyOutcomes.Released);
                    throw;
                }

                var completion = execution.CompletedInTransaction
                    ? CompletionOutcome.CompletedInTransaction
                    : await execution.CompleteAsync(response, CancellationToken.None).ConfigureAwait(false);
                return new IdempotencyOutcome(IdempotencyDecisionKind.Execute, response, completion);
            }
        }
        catch (Exception ex) when (attempt is not null)
        {
            attempt.SetError(ex);
            throw;
        }
        finally
        {
            attempt?.Stop();
        }
    }

    /// <summary>
    /// Renews the lease of <paramref name="execution"/> once. Never throws: returns <see langword="false"/> when the
    /// store refused (the token is stale or the record is no longer InProgress), so renewal stops; a store failure is
    /// logged and returns <see langword="true"/>, so the next interval tries again while the lease still runs.
    /// </summary>
    internal async ValueTask<bool> RenewLeaseAsync(IdempotencyExecution execution)
    {
        var id = execution.Id;
        try
        {
            var renewed = await CallStoreAsync(
                StoreCall.RenewLease,
                id.Operation,
                static (store, s, ct) => store.TryRenewLeaseAsync(s.Id, s.FencingToken, s.Lease, ct),
                execution,
                CancellationToken.None).ConfigureAwait(false);
            if (!renewed && !execution.RenewalStopped)
            {
                LogLeaseRenewalRefused(_logger, id.Tenant, id.Operation, id.Key, execution.FencingToken);
            }

            return renewed;
        }
        catch (Exception ex)
        {
            LogLeaseRenewalFailed(_logger, ex, id.Tenant, id.Operation, id.Key, _settings.Lease);
            return true;
        }
    }

    internal async ValueTask<CompletionOutcome> CompleteAsync(IdempotencyExecution execution, IdempotentResponse response, CancellationToken cancellationToken)
    {
        var id = execution.Id;
        try
        {
            var state = (execution, response, expiration: _settings.Expiration, executor: this);
            var completed = await _completionPipeline.ExecuteAsync(
                static async (s, ct) => await s.executor.CallStoreAsync(
                    StoreCall.Complete,
                    s.execution.Id.Operation,
                    static (store, inner, ct2) => store.TryCompleteAsync(inner.execution.Id, inner.execution.FencingToken, inner.response, inner.expiration, ct2),
                    s,
                    ct).ConfigureAwait(false),
                state,
                cancellationToken).ConfigureAwait(false);
            if (!completed && execution.IsOneCommit && await IsGoneAsync(id).ConfigureAwait(false))
            {
                LogReservationNotCommitted(_logger, id.Tenant, id.Operation, id.Key);
                return CompletionOutcome.NotRecorded;
            }

            if (!completed)
            {
                LogLeaseLost(_logger, id.Tenant, id.Operation, id.Key, execution.FencingToken);
                return CompletionOutcome.LeaseLost;
            }

            LogExecuted(_logger, id.Tenant, id.Operation, id.Key, response.StatusCode);
            return CompletionOutcome.Completed;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            LogCompletionFailed(_logger, ex, id.Tenant, id.Operation, id.Key, _settings.Lease);
            return CompletionOutcome.StoreFailed;
        }
    }

    internal async ValueTask ReleaseAsync(IdempotencyExecution execution, CancellationToken cancellationToken)
    {
        var id = execution.Id;
        try
        {
            var released = await CallStoreAsync(
                StoreCall.Release,
                id.Operation,
                static (store, e, ct) => store.TryReleaseAsync(e.Id, e.FencingToken, ct),
                execution,
                cancellationToken).ConfigureAwait(false);
            if (released)
            {
                LogReleased(_logger, id.Tenant, id.Operation, id.Key, execution.RecoveryPoint);
            }
            else
            {
                await LogReleaseRefusedAsync(execution, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            LogReleaseFailed(_logger, ex, id.Tenant, id.Operation, id.Key, _settings.Lease);
        }
    }

    // A refused release has three causes with very different meanings: the operation's own transaction already
    // completed the record (expected, for example when the client hung up after the commit), the record is gone
    // (expired or purged), or another attempt took the lease over. One read, on this rare path only, tells which.
    private async ValueTask LogReleaseRefusedAsync(IdempotencyExecution execution, CancellationToken cancellationToken)
    {
        var id = execution.Id;
        IdempotencyRecord? current;
        try
        {
            current = await CallStoreAsync(StoreCall.Get, id.Operation, static (store, i, ct) => store.GetAsync(i, ct), id, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsStoreFailure(ex, cancellationToken))
        {
            LogReleaseFailed(_logger, ex, id.Tenant, id.Operation, id.Key, _settings.Lease);
            return;
        }

        if (current is null && execution.IsOneCommit)
        {
            LogReservationNotCommitted(_logger, id.Tenant, id.Operation, id.Key);
        }
        else if (current is not null && IsAnotherAttemptsRecord(execution, current) && execution.ReservationCannotBeTakenOverYet)
        {
            // One-commit mode: the record is another attempt's, and this attempt's reservation, had it committed, could
            // not have been taken over yet (less than a lease ago). So it never committed: it rolled back with its
            // transaction (typically the client hung up), and the key was reserved afresh. No lease was lost.
            LogOneCommitReservationRolledBack(_logger, id.Tenant, id.Operation, id.Key, execution.FencingToken, current.FencingToken, current.State);
        }
        else if (current is null)
        {
            LogReleaseRefusedGone(_logger, id.Tenant, id.Operation, id.Key, execution.FencingToken);
        }
        else if (current.State == IdempotencyRecordState.Completed && current.FencingToken == execution.FencingToken)
        {
            LogReleaseRefusedCompleted(_logger, id.Tenant, id.Operation, id.Key, execution.FencingToken);
        }
        else
        {
            LogLeaseLost(_logger, id.Tenant, id.Operation, id.Key, execution.FencingToken);
        }
    }

    // One-commit mode: a record this attempt did not write. Another token; or a Completed record although this attempt
    // never completed in its transaction (a store whose token counter rolls back with the transaction, as SQLite's does,
    // hands the rolled-back token to the next reservation).
    private static bool IsAnotherAttemptsRecord(IdempotencyExecution execution, IdempotencyRecord current)
        => execution.IsOneCommit
            && !execution.CompletedInTransaction
            && (current.FencingToken != execution.FencingToken || current.State == IdempotencyRecordState.Completed);

    internal void LogTransientFailure(IdempotencyExecution execution, Exception failure)
        => LogOneCommitTransientFailure(_logger, failure, execution.Id.Tenant, execution.Id.Operation, execution.Id.Key);

    internal async ValueTask<bool> SetRecoveryPointAsync(IdempotencyExecution execution, string recoveryPoint, CancellationToken cancellationToken)
    {
        try
        {
            return await CallStoreAsync(
                StoreCall.SetRecoveryPoint,
                execution.Id.Operation,
                static (store, s, ct) => store.TrySetRecoveryPointAsync(s.execution.Id, s.execution.FencingToken, s.recoveryPoint, s.lease, ct),
                (execution, recoveryPoint, lease: _settings.Lease),
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsStoreFailure(ex, cancellationToken))
        {
            throw ex as IdempotencyStoreUnavailableException ?? new IdempotencyStoreUnavailableException("Recording the recovery point failed.", ex);
        }
    }

    private async ValueTask<bool> IsGoneAsync(IdempotencyRecordId id)
    {
        try
        {
            return await CallStoreAsync(StoreCall.Get, id.Operation, static (store, i, ct) => store.GetAsync(i, ct), id, CancellationToken.None).ConfigureAwait(false) is null;
        }
        catch (Exception ex) when (IsStoreFailure(ex, CancellationToken.None))
        {
            return false;
        }
    }

    // Every store call is traced and timed while something listens (and costs two field reads while nothing does).
    private ValueTask<TResult> CallStoreAsync<TState, TResult>(
        StoreCall name,
        string operation,
        Func<IIdempotencyStore, TState, CancellationToken, ValueTask<TResult>> call,
        TState state,
        CancellationToken cancellationToken,
        Func<TResult, string?>? describe = null)
        => _instrumentation.IsObservingStore
            ? _instrumentation.ObserveStoreCallAsync(
                name,
                operation,
                static (s, ct) => s.executor.CallStoreCoreAsync(s.call, s.state, ct),
                (executor: this, call, state),
                describe,
                cancellationToken)
            : CallStoreCoreAsync(call, state, cancellationToken);

    /// <summary>
    /// A store call made outside <see cref="CallStoreAsync"/> (inside the operation's transaction, or the audit), traced
    /// and timed the same way. Not bounded by <see cref="IdempotencyEngineOptions.StoreTimeout"/>.
    /// </summary>
    internal ValueTask<TResult> ObserveStoreCallAsync<TState, TResult>(
        StoreCall name,
        string operation,
        Func<TState, CancellationToken, ValueTask<TResult>> call,
        TState state,
        CancellationToken cancellationToken,
        Func<TResult, string?>? describe = null)
        => _instrumentation.IsObservingStore
            ? _instrumentation.ObserveStoreCallAsync(name, operation, call, state, describe, cancellationToken)
            : call(state, cancellationToken);

    // Every store call is bounded by StoreTimeout; running out of time counts as the store being unavailable. The
    // timer is armed only when the call goes asynchronous: synchronous stores (in-memory) pay for no timer at all.
    private async ValueTask<TResult> CallStoreCoreAsync<TState, TResult>(
        Func<IIdempotencyStore, TState, CancellationToken, ValueTask<TResult>> call,
        TState state,
        CancellationToken cancellationToken)
    {
        // The source that tells the store to give up. Without a caller token (the HTTP path) it is reused from a small
        // per-thread spare once it comes back uncancelled, so a store call allocates none.
        var linked = cancellationToken.CanBeCanceled;
        var abandon = linked ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken) : TakeSpareSource();
        try
        {
            var pending = call(_store, state, abandon.Token);
            if (pending.IsCompleted)
            {
                return await pending.ConfigureAwait(false);
            }

            try
            {
                return await pending.AsTask().WaitAsync(_options.StoreTimeout, _clock, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException ex)
            {
                // Tell the store to give up too, so its connection is not held past our answer.
                await abandon.CancelAsync().ConfigureAwait(false);
                throw new IdempotencyStoreUnavailableException($"The idempotency store did not answer within {_options.StoreTimeout}.", ex);
            }
        }
        finally
        {
            if (!linked && abandon.TryReset())
            {
                t_spareSource = abandon;
            }
            else
            {
                abandon.Dispose();
            }
        }
    }

    private static CancellationTokenSource TakeSpareSource()
    {
        var spare = t_spareSource;
        if (spare is null)
        {
            return new CancellationTokenSource();
        }

        t_spareSource = null;
        return spare;
    }

    private IdempotencyExecution StartExecution(IdempotencyRecord record, bool isTakeOver)
    {
        var execution = new IdempotencyExecution(this, record, isTakeOver);
        if (_options.RenewLease)
        {
            execution.StartRenewal(_settings.RenewalInterval);
        }

        return execution;
    }

    private static bool IsStoreFailure(Exception ex, CancellationToken cancellationToken)
        => ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested;

    [LoggerMessage(IdempotencyEventIds.Executed, LogLevel.Debug, "Idempotent operation {Operation} for tenant {Tenant} with key {Key} completed with status {StatusCode}")]
    private static partial void LogExecuted(ILogger logger, string tenant, string operation, string key, int statusCode);

    [LoggerMessage(IdempotencyEventIds.InProgress, LogLevel.Debug, "Idempotent operation {Operation} for tenant {Tenant} with key {Key} is already in progress; the duplicate was refused")]
    private static partial void LogInProgress(ILogger logger, string tenant, string operation, string key);

    [LoggerMessage(IdempotencyEventIds.StoreUnavailable, LogLevel.Error, "The idempotency store is unavailable; {Operation} for tenant {Tenant} with key {Key} was refused without running")]
    private static partial void LogStoreUnavailable(ILogger logger, Exception exception, string tenant, string operation, string key);

    [LoggerMessage(IdempotencyEventIds.Released, LogLevel.Information, "Idempotent operation {Operation} for tenant {Tenant} with key {Key} did not complete; record released (recovery point: {RecoveryPoint})")]
    private static partial void LogReleased(ILogger logger, string tenant, string operation, string key, string? recoveryPoint);

    [LoggerMessage(IdempotencyEventIds.TakenOver, LogLevel.Warning, "Idempotent operation {Operation} for tenant {Tenant} with key {Key}: an expired lease was taken over with fencing token {FencingToken}, resuming at {RecoveryPoint}")]
    private static partial void LogTakenOver(ILogger logger, string tenant, string operation, string key, long fencingToken, string? recoveryPoint);

    [LoggerMessage(IdempotencyEventIds.LeaseLost, LogLevel.Warning, "Idempotent operation {Operation} for tenant {Tenant} with key {Key}: fencing token {FencingToken} is stale (the lease was taken over); nothing was written")]
    private static partial void LogLeaseLost(ILogger logger, string tenant, string operation, string key, long fencingToken);

    [LoggerMessage(IdempotencyEventIds.ReleaseRefusedCompleted, LogLevel.Debug, "Idempotent operation {Operation} for tenant {Tenant} with key {Key}: nothing to release, its own transaction already completed the record (fencing token {FencingToken}); retries replay that answer")]
    private static partial void LogReleaseRefusedCompleted(ILogger logger, string tenant, string operation, string key, long fencingToken);

    [LoggerMessage(IdempotencyEventIds.ReleaseRefusedGone, LogLevel.Information, "Idempotent operation {Operation} for tenant {Tenant} with key {Key}: nothing to release, the record (fencing token {FencingToken}) no longer exists (expired or purged)")]
    private static partial void LogReleaseRefusedGone(ILogger logger, string tenant, string operation, string key, long fencingToken);

    [LoggerMessage(IdempotencyEventIds.CompletionFailed, LogLevel.Error, "Idempotent operation {Operation} for tenant {Tenant} with key {Key} RAN but its completion could not be stored; the record stays InProgress and a retry after the lease ({Lease}) will run the operation again unless it is transactional")]
    private static partial void LogCompletionFailed(ILogger logger, Exception exception, string tenant, string operation, string key, TimeSpan lease);

    [LoggerMessage(IdempotencyEventIds.ReservationNotCommitted, LogLevel.Information, "Idempotent operation {Operation} for tenant {Tenant} with key {Key}: its one-commit reservation was not committed (the operation's transaction rolled back), so nothing is recorded and a retry runs the operation again")]
    private static partial void LogReservationNotCommitted(ILogger logger, string tenant, string operation, string key);

    [LoggerMessage(IdempotencyEventIds.OneCommitReservationRolledBack, LogLevel.Debug, "Idempotent operation {Operation} for tenant {Tenant} with key {Key}: nothing to release; this attempt's one-commit reservation (fencing token {FencingToken}) rolled back with its transaction and another attempt has reserved the key since (fencing token {HolderFencingToken}, {HolderState}); no lease was taken over")]
    private static partial void LogOneCommitReservationRolledBack(ILogger logger, string tenant, string operation, string key, long fencingToken, long holderFencingToken, IdempotencyRecordState holderState);

    [LoggerMessage(IdempotencyEventIds.OneCommitTransientFailure, LogLevel.Error, "Idempotent operation {Operation} for tenant {Tenant} with key {Key}: its one-commit transaction failed with a transient database error, so it committed nothing; answered 503 with Retry-After, and the client's retry runs it once")]
    private static partial void LogOneCommitTransientFailure(ILogger logger, Exception exception, string tenant, string operation, string key);

    [LoggerMessage(IdempotencyEventIds.ReservationConflict, LogLevel.Debug, "Idempotent operation {Operation} for tenant {Tenant} with key {Key}: the one-commit reservation met a held key; answered {Decision}")]
    private static partial void LogReservationConflict(ILogger logger, string tenant, string operation, string key, IdempotencyDecisionKind decision);

    [LoggerMessage(IdempotencyEventIds.LeaseRenewalFailed, LogLevel.Warning, "Renewing the lease of {Operation} for tenant {Tenant} with key {Key} failed; renewal is tried again, but if it keeps failing a retry may take the operation over once the lease ({Lease}) runs out")]
    private static partial void LogLeaseRenewalFailed(ILogger logger, Exception exception, string tenant, string operation, string key, TimeSpan lease);

    [LoggerMessage(IdempotencyEventIds.LeaseRenewalRefused, LogLevel.Warning, "Idempotent operation {Operation} for tenant {Tenant} with key {Key}: the store refused to renew the lease of fencing token {FencingToken} (it was taken over, or the record is gone); renewal stopped and this attempt's completion will be refused")]
    private static partial void LogLeaseRenewalRefused(ILogger logger, string tenant, string operation, string key, long fencingToken);

    [LoggerMessage(IdempotencyEventIds.ReleaseFailed, LogLevel.Warning, "Releasing idempotency record for {Operation}, tenant {Tenant}, key {Key} failed; retries are refused until the lease ({Lease}) ends")]
    private static partial void LogReleaseFailed(ILogger logger, Exception exception, string tenant, string operation, string key, TimeSpan lease);
}

/// <summary>What <see cref="IdempotencyExecutor.ExecuteAsync"/> did.</summary>
/// <param name="Kind"><see cref="IdempotencyDecisionKind.Execute"/> when the operation ran now; otherwise why it did not.</param>
/// <param name="Response">The fresh result, or the stored one for <see cref="IdempotencyDecisionKind.Replay"/>.</param>
/// <param name="Completion">How storing the fresh result ended, when the operation ran.</param>
public readonly record struct IdempotencyOutcome(IdempotencyDecisionKind Kind, IdempotentResponse? Response, CompletionOutcome? Completion);
