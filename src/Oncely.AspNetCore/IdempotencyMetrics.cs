using System.Diagnostics.Metrics;

namespace Oncely.AspNetCore;

/// <summary>The names Oncely publishes telemetry under.</summary>
public static class IdempotencyTelemetry
{
    /// <summary>The <see cref="Meter"/> name: <c>Oncely</c>.</summary>
    public const string MeterName = "Oncely";

    /// <summary>
    /// The counter of idempotent requests by outcome: <c>oncely.requests</c>, unit <c>{request}</c>, tag
    /// <c>oncely.outcome</c> (executed, replayed, in_progress, key_reused, store_unavailable, rejected, released, no_key).
    /// </summary>
    public const string RequestsInstrument = "oncely.requests";

    /// <summary>The tag on <see cref="RequestsInstrument"/>.</summary>
    public const string OutcomeTag = "oncely.outcome";
}

internal sealed class IdempotencyMetrics
{
    private readonly Counter<long> _requests;

    public IdempotencyMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(IdempotencyTelemetry.MeterName);
        _requests = meter.CreateCounter<long>(IdempotencyTelemetry.RequestsInstrument, "{request}", "Idempotent requests by outcome.");
    }

    public void Count(string outcome)
    {
        // No tag work when nothing listens.
        if (_requests.Enabled)
        {
            _requests.Add(1, new KeyValuePair<string, object?>(IdempotencyTelemetry.OutcomeTag, outcome));
        }
    }

    internal static class Outcomes
    {
        public const string Executed = "executed";
        public const string Replayed = "replayed";
        public const string InProgress = "in_progress";
        public const string KeyReused = "key_reused";
        public const string StoreUnavailable = "store_unavailable";
        public const string Rejected = "rejected";
        public const string Released = "released";
        public const string NoKey = "no_key";
    }
}
