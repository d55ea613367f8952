using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Compliance.Redaction;
using Microsoft.AspNetCore.DataProtection;
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
    // The executor reads as the decisions (rows 5 to 8, 12, 13): it reserves or reads through StoreInvoker, turns the
    // store's answer into a decision with DecisionMapping, and hands an Execute decision an IdempotencyExecution, which
    // makes every later transition itself. Nothing here writes on an attempt's behalf.
    private readonly ExecutionRuntime _runtime;

    /// <summary>Creates an executor.</summary>
    /// <param name="store">Where records live.</param>
    /// <param name="options">The engine settings; validated here.</param>
    /// <param name="timeProvider">The clock for timeouts and retry delays; defaults to <see cref="TimeProvider.System"/>.</param>
    /// <param name="logger">Where events go; defaults to none.</param>
    /// <param name="meterFactory">
    /// Creates the <c>Oncely</c> meter the executor's metrics are recorded on (see <see cref="IdempotencyDiagnostics"/>);
    /// pass the application's (from DI). Defaults to <see langword="null"/>: a meter shared by the whole process.
    /// </param>
    /// <param name="redactorProvider">
    /// The application's redactors (<c>services.AddRedaction(…)</c>), asked for the classifications of
    /// <see cref="OncelyTaxonomy"/> and applied to the keys and tenants the executor logs. Defaults to
    /// <see langword="null"/>: card numbers are masked (<see cref="PrimaryAccountNumberRedactor"/>), nothing else changes.
    /// Card numbers are masked in every case.
    /// </param>
    /// <param name="dataProtectionProvider">
    /// Encrypts each stored answer's headers and body before the store sees it, and decrypts it for a replay (see
    /// docs/data-protection.md); with dependency injection, <c>.ProtectStoredAnswers()</c> passes the application's.
    /// Default: <see langword="null"/>, answers stored in clear.
    /// </param>
    /// <exception cref="ArgumentException">The options are invalid; the message says what to change.</exception>
    public IdempotencyExecutor(
        IIdempotencyStore store,
        IdempotencyEngineOptions options,
        TimeProvider? timeProvider = null,
        ILogger<IdempotencyExecutor>? logger = null,
        IMeterFactory? meterFactory = null,
        IRedactorProvider? redactorProvider = null,
        IDataProtectionProvider? dataProtectionProvider = null)
        : this(
            store,
            options,
            timeProvider,
            logger,
            meterFactory,
            redactorProvider is null ? IdempotencyRedaction.Default : new IdempotencyRedaction(redactorProvider),
            dataProtectionProvider is null ? null : new StoredAnswerProtection(dataProtectionProvider))
    {
    }

    // The DI path: the application's one IdempotencyRedaction and StoredAnswerProtection (ProtectStoredAnswers), shared
    // with the auditor and the operator API.
    internal IdempotencyExecutor(IIdempotencyStore store, IdempotencyEngineOptions options, TimeProvider? timeProvider, ILogger<IdempotencyExecutor>? logger, IMeterFactory? meterFactory, IdempotencyRedaction redaction, StoredAnswerProtection? protection)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        var problems = options.Validate();
        if (problems.Count > 0)
        {
            throw new ArgumentException(string.Join(Environment.NewLine, problems), nameof(options));
        }

        var clock = timeProvider ?? TimeProvider.System;
        var completionRetries = options.CompletionRetries == 0 ? ResiliencePipeline<bool>.Empty : new ResiliencePipelineBuilder<bool> { TimeProvider = clock }
            .AddRetry(new RetryStrategyOptions<bool>
            {
                ShouldHandle = new PredicateBuilder<bool>().Handle<Exception>(e => e is not OperationCanceledException || e is TimeoutException),
                MaxRetryAttempts = options.CompletionRetries,
                Delay = options.CompletionRetryDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
            })
            .Build();
        _runtime = new ExecutionRuntime(
            new StoreInvoker(store, options.StoreTimeout, clock, new IdempotencyInstrumentation(meterFactory, store.GetType().Name)),
            options,
            OperationSettings.From(options),
            completionRetries,
            (ILogger?)logger ?? NullLogger.Instance,
            redaction,
            protection);
    }

    // WithPolicy: the same store calls, logger and completion retries; another lease, expiration and in-progress wait.
    private IdempotencyExecutor(IdempotencyExecutor engine, IdempotencyPolicy policy)
    {
        var shared = engine._runtime;
        _runtime = new ExecutionRuntime(shared.Store, shared.Options, OperationSettings.From(shared.Options, policy), shared.CompletionRetries, shared.Logger, shared.Redaction, shared.Protection);
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
    public IIdempotencyStore Store => _runtime.Store.Store;

    /// <summary>
    /// The engine settings. An executor bound to a policy (<see cref="WithPolicy"/>) uses the policy's lease, expiration
    /// and in-progress wait instead of these (see <see cref="Lease"/> and <see cref="Expiration"/>).
    /// </summary>
    public IdempotencyEngineOptions Options => _runtime.Options;

    /// <summary>Every store call outside an attempt (the key-reuse audit) goes through the same invoker: span, timer, clock.</summary>
    internal StoreInvoker StoreInvoker => _runtime.Store;

    /// <summary>The lease this executor's operations hold: the policy's, else <see cref="IdempotencyEngineOptions.Lease"/>.</summary>
    public TimeSpan Lease => _runtime.Settings.Lease;

    /// <summary>How long this executor's records live: the policy's, else <see cref="IdempotencyEngineOptions.Expiration"/>.</summary>
    public TimeSpan Expiration => _runtime.Settings.Expiration;

    /// <summary>What the executor's and its transport's log values pass through (card numbers masked, then the application's redactors).</summary>
    internal IdempotencyRedaction Redaction => _runtime.Redaction;
    /// <summary>Stored-answer protection (<c>ProtectStoredAnswers()</c>), or <see langword="null"/>; the key-reuse audit seals its payloads with it.</summary>
    internal StoredAnswerProtection? Protection => _runtime.Protection;

    /// <summary>The executor's spans and metrics.</summary>
    internal IdempotencyInstrumentation Instrumentation => _runtime.Store.Instrumentation;

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
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    internal async ValueTask<IdempotencyDecision> BeginCoreAsync(IdempotencyRecordId id, string fingerprint, CancellationToken cancellationToken, CancellationToken waitCancellation)
    {
        ArgumentException.ThrowIfNullOrEmpty(fingerprint);
        IdempotencyInstrumentation.TagKey(id);
        var waitUntil = _runtime.Settings.InProgressWait > TimeSpan.Zero ? _runtime.Clock.GetUtcNow() + _runtime.Settings.InProgressWait : (DateTimeOffset?)null;

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
                result = await _runtime.Store.CallAsync(
                    StoreCall.Reserve,
                    id.Operation,
                    static (store, state, ct) => store.TryReserveAsync(state.id, state.fingerprint, state.Lease, state.Expiration, ct),
                    (id, fingerprint, _runtime.Settings.Lease, _runtime.Settings.Expiration),
                    cancellationToken,
                    static r => IdempotencyInstrumentation.DescribeReservation(r.Outcome)).ConfigureAwait(false);
            }
            catch (Exception ex) when (StoreInvoker.IsStoreFailure(ex, cancellationToken))
            {
                return StoreUnavailable(id, ex);
            }

            var kind = DecisionMapping.FromReservation(result.Outcome);
            switch (kind)
            {
                case IdempotencyDecisionKind.Execute:
                    // Row 5 (acquired) or row 12 (an expired lease taken over: a new token, resuming at the recovery point).
                    var isTakeOver = result.Outcome == ReservationOutcome.TakenOver;
                    if (isTakeOver)
                    {
                        LogTakenOver(_runtime.Logger, _runtime.Redaction.Tenant(id.Tenant), IdempotencyRedaction.Text(id.Operation), _runtime.Redaction.Key(id.Key), result.Record.FencingToken, PrimaryAccountNumbers.MaskNullable(result.Record.RecoveryPoint));
                    }

                    return new IdempotencyDecision(kind, result.Record, new IdempotencyExecution(_runtime, result.Record, isTakeOver), null);
                case IdempotencyDecisionKind.InProgress:
                    if (waitUntil is { } deadline && _runtime.Clock.GetUtcNow() + _runtime.Options.InProgressPollInterval <= deadline)
                    {
                        // Row 7: a caller that went away stops the wait here; it is not a store failure.
                        await Task.Delay(_runtime.Options.InProgressPollInterval, _runtime.Clock, waitToken).ConfigureAwait(false);
                        continue;
                    }

                    if (_runtime.Logger.IsEnabled(LogLevel.Debug))
                    {
                        LogInProgress(_runtime.Logger, _runtime.Redaction.Tenant(id.Tenant), IdempotencyRedaction.Text(id.Operation), _runtime.Redaction.Key(id.Key));
                    }
                    return new IdempotencyDecision(kind, result.Record, null, null);
                default:
                    // Row 6 (replay; 6a when its answer cannot be decrypted) or row 8 (key reused).
                    return Settled(kind, result.Record);
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
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<IdempotencyDecision> BeginOneCommitAsync(IdempotencyRecordId id, string fingerprint, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(fingerprint);
        IdempotencyInstrumentation.TagKey(id);
        IdempotencyRecord? record;
        try
        {
            record = await _runtime.Store.GetAsync(id, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (StoreInvoker.IsStoreFailure(ex, cancellationToken))
        {
            return StoreUnavailable(id, ex);
        }

        // Nothing settled by the read (no record, or one of this fingerprint still held): the reservation in the
        // operation's transaction decides.
        return DecisionMapping.FromRecord(record, fingerprint) is { } settled
            ? Settled(settled, record)
            : new IdempotencyDecision(IdempotencyDecisionKind.Execute, record, new IdempotencyExecution(_runtime, id, fingerprint), null);
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
                record = await _runtime.Store.GetAsync(id, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (StoreInvoker.IsStoreFailure(ex, cancellationToken))
            {
                return StoreUnavailable(id, ex);
            }
        }

        // A record still held, or gone since the conflict, is answered as in progress: retry later.
        var kind = DecisionMapping.FromRecord(record, fingerprint) ?? IdempotencyDecisionKind.InProgress;
        LogReservationConflict(_runtime.Logger, _runtime.Redaction.Tenant(id.Tenant), IdempotencyRedaction.Text(id.Operation), _runtime.Redaction.Key(id.Key), kind);
        return Settled(kind, record);
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
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<IdempotencyExecutionResult> ExecuteAsync(
        IdempotencyRecordId id,
        string fingerprint,
        Func<IdempotencyExecution, CancellationToken, ValueTask<IdempotentResponse>> operation,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(operation);
        var attempt = Instrumentation.StartAttempt(id.Operation);
        try
        {
            var decision = await BeginAsync(id, fingerprint, cancellationToken).ConfigureAwait(false);
            attempt?.SetOutcome(OutcomeTagValues.For(decision.Kind));
            if (decision.Kind != IdempotencyDecisionKind.Execute)
            {
                return new IdempotencyExecutionResult(decision.Kind, decision.Kind == IdempotencyDecisionKind.StoredAnswerUnreadable ? null : decision.Record?.Response, null);
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
                    attempt?.SetOutcome(OutcomeTagValues.Released);
                    throw;
                }

                var completion = execution.CompletedInTransaction
                    ? CompletionOutcome.CompletedInTransaction
                    : await execution.CompleteAsync(response, CancellationToken.None).ConfigureAwait(false);
                return new IdempotencyExecutionResult(IdempotencyDecisionKind.Execute, response, completion);
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

    // A decision made without running: a replay gets its stored answer opened (row 6), or, when that answer cannot be
    // decrypted (its key was revoked or is gone), the refusal of row 6a; the operation never runs again either way.
    private IdempotencyDecision Settled(IdempotencyDecisionKind kind, IdempotencyRecord? record)
    {
        if (kind != IdempotencyDecisionKind.Replay || record is null)
        {
            return new IdempotencyDecision(kind, record, null, null);
        }

        return _runtime.TryReadAnswer(record, out var readable)
            ? new IdempotencyDecision(kind, readable, null, null)
            : new IdempotencyDecision(IdempotencyDecisionKind.StoredAnswerUnreadable, record, null, null);
    }

    // Row 13: fail closed; nothing runs.
    private IdempotencyDecision StoreUnavailable(IdempotencyRecordId id, Exception failure)
    {
        LogStoreUnavailable(_runtime.Logger, IdempotencyRedaction.Exception(failure), _runtime.Redaction.Tenant(id.Tenant), IdempotencyRedaction.Text(id.Operation), _runtime.Redaction.Key(id.Key));
        return new IdempotencyDecision(IdempotencyDecisionKind.StoreUnavailable, null, null, failure);
    }
}
