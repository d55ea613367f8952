using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>
/// The names Oncely publishes telemetry under, for ASP.NET Core applications. The full list (every instrument, tag and
/// span) is <see cref="IdempotencyDiagnostics"/>; these constants are the same values.
/// </summary>
public static class IdempotencyTelemetry
{
    /// <summary>The <see cref="System.Diagnostics.Metrics.Meter"/> name: <c>Oncely</c>.</summary>
    public const string MeterName = IdempotencyDiagnostics.MeterName;

    /// <summary>The <see cref="System.Diagnostics.ActivitySource"/> name: <c>Oncely</c>.</summary>
    public const string ActivitySourceName = IdempotencyDiagnostics.ActivitySourceName;

    /// <summary>
    /// The counter of idempotent requests by outcome: <c>oncely.requests</c>, unit <c>{request}</c>, tags
    /// <c>oncely.outcome</c> (executed, replayed, in_progress, key_reused, store_unavailable, rejected, released, no_key)
    /// and <c>oncely.operation</c>.
    /// </summary>
    public const string RequestsInstrument = IdempotencyDiagnostics.RequestsInstrument;

    /// <summary>The outcome tag on <see cref="RequestsInstrument"/> and on <c>oncely.request.duration</c>: <c>oncely.outcome</c>.</summary>
    public const string OutcomeTag = IdempotencyDiagnostics.OutcomeTag;
}
