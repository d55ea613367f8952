using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;

namespace Oncely;

/// <summary>
/// Oncely's traces and metrics (names in <see cref="IdempotencyDiagnostics"/>). One instance per executor: the
/// instruments live on the <c>Oncely</c> meter of the application's <see cref="IMeterFactory"/> (or, for an executor
/// built without one, on a process-wide meter), and every span comes from one static <see cref="ActivitySource"/>.
/// Every method does nothing, and allocates nothing, while no listener is attached. No tag or event ever carries a key, a
/// tenant, a payload or an exception's message: the key only as <see cref="KeyHash"/>, a failure only as its type, and the
/// operation name (configuration, one per endpoint or consumer) with card numbers masked.
/// </summary>
internal sealed class IdempotencyInstrumentation
{
    internal static readonly ActivitySource ActivitySource = new(IdempotencyDiagnostics.ActivitySourceName, Version);

    // The boundaries OpenTelemetry advises for http.server.request.duration: a request's time includes the operation.
    private static readonly double[] RequestBuckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

    // Store calls are what Oncely adds to a request: finer at the low end than db.client.operation.duration's advice.
    private static readonly double[] StoreBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private static readonly Lazy<Meter> ProcessMeter = new(() => new Meter(IdempotencyDiagnostics.MeterName, Version));

    private readonly Counter<long> _requests;
    private readonly Histogram<double> _requestDuration;
    private readonly UpDownCounter<long> _activeExecutions;
    private readonly Histogram<double> _storeDuration;

    public IdempotencyInstrumentation(IMeterFactory? meterFactory, string store)
    {
        Store = store;
        var meter = meterFactory?.Create(new MeterOptions(IdempotencyDiagnostics.MeterName) { Version = Version }) ?? ProcessMeter.Value;
        _requests = meter.CreateCounter<long>(IdempotencyDiagnostics.RequestsInstrument, "{request}", "Idempotent requests by outcome.");
        _requestDuration = meter.CreateHistogram(
            IdempotencyDiagnostics.RequestDurationInstrument,
            "s",
            "Duration of idempotent requests, from reading the key to the answer (the operation included when it ran), by outcome.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = RequestBuckets });
        _activeExecutions = meter.CreateUpDownCounter<long>(IdempotencyDiagnostics.ActiveExecutionsInstrument, "{execution}", "Operations running now under a lease held by this process.");
        _storeDuration = meter.CreateHistogram(
            IdempotencyDiagnostics.StoreOperationDurationInstrument,
            "s",
            "Duration of idempotency store calls, by store call; error.type is set when the call failed or timed out.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = StoreBuckets });
    }

    /// <summary>The store's type name, the value of <see cref="IdempotencyDiagnostics.StoreTag"/>.</summary>
    public string Store { get; }

    /// <summary><see langword="true"/> when a request would be traced, counted or timed.</summary>
    public bool IsObservingRequests => _requests.Enabled || _requestDuration.Enabled || ActivitySource.HasListeners();

    /// <summary><see langword="true"/> when a store call would be traced or timed.</summary>
    public bool IsObservingStore => _storeDuration.Enabled || ActivitySource.HasListeners();

    private static string? Version => typeof(IdempotencyInstrumentation).Assembly.GetName().Version?.ToString();

    /// <summary>
    /// Starts observing one idempotent request: a span (made <see cref="Activity.Current"/>, so the operation's own spans
    /// and the store calls nest under it) and a start time. <see langword="null"/>, at no cost, when nothing listens.
    /// </summary>
    public IdempotencyAttempt? StartAttempt(string operation)
    {
        Activity? activity = null;
        var observed = ActivitySource.HasListeners();
        if (!observed && !_requests.Enabled && !_requestDuration.Enabled)
        {
            return null;
        }

        // An operation name is configuration, not request data, but it is masked like every value Oncely writes.
        operation = IdempotencyRedaction.Text(operation);
        if (observed)
        {
            activity = ActivitySource.StartActivity(IdempotencyDiagnostics.RequestActivityName, ActivityKind.Internal);
            if (activity is { IsAllDataRequested: true })
            {
                activity.DisplayName = "idempotent " + operation;
                activity.SetTag(IdempotencyDiagnostics.OperationTag, operation);
                activity.SetTag(IdempotencyDiagnostics.StoreTag, Store);
            }
        }

        return activity is null && !_requests.Enabled && !_requestDuration.Enabled ? null : new IdempotencyAttempt(this, operation, activity);
    }

    internal void Stop(IdempotencyAttempt attempt, string? outcome, string? errorType, TimeSpan elapsed)
    {
        if (_requests.Enabled || _requestDuration.Enabled)
        {
            var tags = new TagList();
            if (outcome is not null)
            {
                tags.Add(IdempotencyDiagnostics.OutcomeTag, outcome);
            }

            tags.Add(IdempotencyDiagnostics.OperationTag, attempt.Operation);
            _requests.Add(1, tags);
            if (errorType is not null)
            {
                tags.Add(IdempotencyDiagnostics.ErrorTypeTag, errorType);
            }

            _requestDuration.Record(elapsed.TotalSeconds, tags);
        }

        if (attempt.Activity is { } activity)
        {
            if (activity.IsAllDataRequested)
            {
                activity.SetTag(IdempotencyDiagnostics.OutcomeTag, outcome);
                activity.SetTag(IdempotencyDiagnostics.ErrorTypeTag, errorType);
            }

            // A refusal the client caused (409, 422, 400) is an answer, not a failure; an unavailable store or an
            // exception is.
            if (errorType is not null || outcome == OutcomeTagValues.StoreUnavailable)
            {
                activity.SetStatus(ActivityStatusCode.Error);
            }

            activity.Stop();
        }
    }

    /// <summary>
    /// Tags the request span in progress (when it is Oncely's own and sampled) with a hash of the record id, so the
    /// attempts of one operation can be found together without the key being recorded.
    /// </summary>
    public static void TagKey(IdempotencyRecordId id)
    {
        if (!ActivitySource.HasListeners()
            || Activity.Current is not { IsAllDataRequested: true } current
            || !ReferenceEquals(current.Source, ActivitySource)
            || !string.Equals(current.OperationName, IdempotencyDiagnostics.RequestActivityName, StringComparison.Ordinal))
        {
            return;
        }

        current.SetTag(IdempotencyDiagnostics.KeyHashTag, KeyHash(id));
    }

    internal static string KeyHash(IdempotencyRecordId id)
    {
        // Length-prefixed, so no two (tenant, operation, key) triples hash the same input.
        var material = Encoding.UTF8.GetBytes($"oncely-key-hash/v1\n{id.Tenant.Length}:{id.Tenant}\n{id.Operation.Length}:{id.Operation}\n{id.Key}");
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(material, hash);
        return Convert.ToHexStringLower(hash[..8]);
    }

    /// <summary>Counts an operation as running now; returns whether it was counted (so the end is counted the same way).</summary>
    public bool EnterExecution(string operation)
    {
        if (!_activeExecutions.Enabled)
        {
            return false;
        }

        _activeExecutions.Add(1, new KeyValuePair<string, object?>(IdempotencyDiagnostics.OperationTag, IdempotencyRedaction.Text(operation)));
        return true;
    }

    public void LeaveExecution(string operation)
        => _activeExecutions.Add(-1, new KeyValuePair<string, object?>(IdempotencyDiagnostics.OperationTag, IdempotencyRedaction.Text(operation)));

    /// <summary>
    /// Runs one store call inside a span and a timer. Call it only when <see cref="IsObservingStore"/>: the span is
    /// started here, inside this asynchronous method, so it is <see cref="Activity.Current"/> for the call only.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<TResult> ObserveStoreCallAsync<TState, TResult>(
        StoreCall call,
        string operation,
        Func<TState, CancellationToken, ValueTask<TResult>> invoke,
        TState state,
        Func<TResult, string?>? describe,
        CancellationToken cancellationToken)
    {
        var activity = ActivitySource.HasListeners() ? ActivitySource.StartActivity(call.ActivityName, ActivityKind.Internal) : null;
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag(IdempotencyDiagnostics.StoreTag, Store);
            activity.SetTag(IdempotencyDiagnostics.StoreOperationTag, call.Name);
            activity.SetTag(IdempotencyDiagnostics.OperationTag, IdempotencyRedaction.Text(operation));
        }

        var started = _storeDuration.Enabled ? Stopwatch.GetTimestamp() : 0;
        try
        {
            var result = await invoke(state, cancellationToken).ConfigureAwait(false);
            if (describe is not null && activity is { IsAllDataRequested: true })
            {
                activity.SetTag(IdempotencyDiagnostics.ReservationTag, describe(result));
            }

            RecordStoreCall(call, started, errorType: null);
            return result;
        }
        catch (Exception ex)
        {
            var errorType = ErrorType(ex);
            RecordStoreCall(call, started, errorType);
            if (activity is not null)
            {
                activity.SetTag(IdempotencyDiagnostics.ErrorTypeTag, errorType);
                activity.SetStatus(ActivityStatusCode.Error);
            }

            throw;
        }
        finally
        {
            activity?.Stop();
        }
    }

    private void RecordStoreCall(StoreCall call, long started, string? errorType)
    {
        if (started == 0 || !_storeDuration.Enabled)
        {
            return;
        }

        var tags = new TagList
        {
            { IdempotencyDiagnostics.StoreTag, Store },
            { IdempotencyDiagnostics.StoreOperationTag, call.Name },
        };
        if (errorType is not null)
        {
            tags.Add(IdempotencyDiagnostics.ErrorTypeTag, errorType);
        }

        _storeDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, tags);
    }

    /// <summary>
    /// The <c>error.type</c> of a failure: <c>timeout</c>, or the full type name of the driver's exception (looking
    /// through Oncely's own wrapper). Never the message, which can quote a key.
    /// </summary>
    internal static string ErrorType(Exception exception)
    {
        if (exception is TimeoutException || exception.InnerException is TimeoutException)
        {
            return "timeout";
        }

        var cause = exception is IdempotencyStoreUnavailableException { InnerException: { } inner } ? inner : exception;
        return cause.GetType().FullName ?? cause.GetType().Name;
    }

    internal static string? DescribeReservation(ReservationOutcome outcome) => outcome switch
    {
        ReservationOutcome.Acquired => "acquired",
        ReservationOutcome.TakenOver => "taken_over",
        ReservationOutcome.Completed => "completed",
        ReservationOutcome.InProgress => "in_progress",
        ReservationOutcome.FingerprintMismatch => "fingerprint_mismatch",
        _ => null,
    };
}
