namespace Oncely;

/// <summary>
/// The names Oncely publishes traces and metrics under: one <see cref="System.Diagnostics.ActivitySource"/> and one
/// <see cref="System.Diagnostics.Metrics.Meter"/>, both named <c>Oncely</c>. They never change meaning between versions;
/// docs/telemetry.md lists every instrument with its unit and tags.
/// </summary>
/// <remarks>
/// Nothing is tagged, timed or allocated for telemetry unless a listener is attached (an OpenTelemetry
/// <c>AddSource(IdempotencyDiagnostics.ActivitySourceName)</c> / <c>AddMeter(IdempotencyDiagnostics.MeterName)</c>, or any
/// <see cref="System.Diagnostics.ActivityListener"/> / <see cref="System.Diagnostics.Metrics.MeterListener"/>). Keys,
/// tenants, payloads and exception messages (which can quote a key) are never recorded.
/// </remarks>
public static class IdempotencyDiagnostics
{
    /// <summary>The <see cref="System.Diagnostics.ActivitySource"/> name: <c>Oncely</c>.</summary>
    public const string ActivitySourceName = "Oncely";

    /// <summary>The <see cref="System.Diagnostics.Metrics.Meter"/> name: <c>Oncely</c>.</summary>
    public const string MeterName = "Oncely";

    /// <summary>
    /// The operation name of the span that covers one idempotent request (or message) from its key to its answer, the
    /// operation's own work included: <c>oncely.request</c>. Its display name is <c>idempotent {operation}</c>, for
    /// example <c>idempotent POST /payments</c>.
    /// </summary>
    public const string RequestActivityName = "oncely.request";

    /// <summary>
    /// The prefix of the spans around each store call: <c>oncely.store.</c> followed by the call
    /// (<c>oncely.store.reserve</c>, <c>oncely.store.complete</c>, …; the values of <see cref="StoreOperationTag"/>).
    /// </summary>
    public const string StoreActivityPrefix = "oncely.store.";

    /// <summary>
    /// Counter of idempotent requests (or messages) by outcome: <c>oncely.requests</c>, unit <c>{request}</c>, tags
    /// <see cref="OutcomeTag"/> and <see cref="OperationTag"/>.
    /// </summary>
    public const string RequestsInstrument = "oncely.requests";

    /// <summary>
    /// Histogram of how long idempotent requests take, from reading the key to the answer, by outcome:
    /// <c>oncely.request.duration</c>, unit <c>s</c>, tags <see cref="OutcomeTag"/>, <see cref="OperationTag"/> and,
    /// when an exception escaped, <see cref="ErrorTypeTag"/>.
    /// </summary>
    public const string RequestDurationInstrument = "oncely.request.duration";

    /// <summary>
    /// Up-down counter of operations running now under a lease held by this process:
    /// <c>oncely.active_executions</c>, unit <c>{execution}</c>, tag <see cref="OperationTag"/>.
    /// </summary>
    public const string ActiveExecutionsInstrument = "oncely.active_executions";

    /// <summary>
    /// Histogram of store calls: <c>oncely.store.operation.duration</c>, unit <c>s</c>, tags <see cref="StoreTag"/>,
    /// <see cref="StoreOperationTag"/> and, when the call failed or timed out, <see cref="ErrorTypeTag"/>.
    /// </summary>
    public const string StoreOperationDurationInstrument = "oncely.store.operation.duration";

    /// <summary>
    /// What happened to the request: <c>executed</c>, <c>replayed</c>, <c>in_progress</c>, <c>key_reused</c>,
    /// <c>store_unavailable</c>, <c>released</c>, <c>rejected</c> (refused before the store: key, caller, size,
    /// framing) or <c>no_key</c> (an optional key was not sent).
    /// </summary>
    public const string OutcomeTag = "oncely.outcome";

    /// <summary>The operation (the second half of the scope), for example <c>POST /payments</c>: one value per endpoint or consumer.</summary>
    public const string OperationTag = "oncely.operation";

    /// <summary>The store's type name, for example <c>PostgreSqlIdempotencyStore</c>.</summary>
    public const string StoreTag = "oncely.store";

    /// <summary>
    /// The store call: <c>reserve</c>, <c>get</c>, <c>complete</c>, <c>release</c>, <c>renew_lease</c>,
    /// <c>set_recovery_point</c>, <c>reserve_in_transaction</c>, <c>complete_in_transaction</c>,
    /// <c>set_recovery_point_in_transaction</c> or <c>append_audit</c>.
    /// </summary>
    public const string StoreOperationTag = "oncely.store.operation";

    /// <summary>
    /// On <c>oncely.store.reserve</c> and <c>oncely.store.reserve_in_transaction</c> spans: what the reservation found
    /// (<c>acquired</c>, <c>taken_over</c>, <c>completed</c>, <c>in_progress</c>, <c>fingerprint_mismatch</c>).
    /// </summary>
    public const string ReservationTag = "oncely.reservation";

    /// <summary>
    /// On request spans: 16 hexadecimal digits of a SHA-256 over the tenant, the operation and the key, so every attempt
    /// of one operation can be found across instances without the key itself (which can be a secret or personal data)
    /// ever leaving the process.
    /// </summary>
    public const string KeyHashTag = "oncely.key.hash";

    /// <summary>
    /// The OpenTelemetry <c>error.type</c>: <c>timeout</c> when a store call ran out of
    /// <see cref="IdempotencyEngineOptions.StoreTimeout"/>, otherwise the exception's full type name. Never its message.
    /// </summary>
    public const string ErrorTypeTag = "error.type";
}
