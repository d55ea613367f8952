using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>
/// The middleware's side of <see cref="IdempotencyInstrumentation"/>: one observed attempt per idempotent request, kept
/// on the request's features while something listens, so each decision of the middleware can set its outcome.
/// </summary>
internal sealed class IdempotencyMetrics(IdempotencyExecutor executor)
{
    /// <summary><see langword="true"/> while a request would be traced, counted or timed.</summary>
    public bool IsObserving => executor.Instrumentation.IsObservingRequests;

    /// <summary>Starts observing the request; <see langword="null"/> (and nothing stored) when nothing listens.</summary>
    public IdempotencyAttempt? Start(HttpContext context, string operation)
    {
        var attempt = executor.Instrumentation.StartAttempt(operation);
        if (attempt is not null)
        {
            context.Features.Set(attempt);
        }

        return attempt;
    }

    /// <summary>Sets the outcome of the request's observed attempt, if there is one (no feature lookup while nothing listens).</summary>
    public void Count(HttpContext context, string outcome)
    {
        if (IsObserving)
        {
            context.Features.Get<IdempotencyAttempt>()?.SetOutcome(outcome);
        }
    }
}
