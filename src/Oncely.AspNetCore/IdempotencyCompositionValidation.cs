using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.OutputCaching;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Oncely.AspNetCore;

/// <summary>
/// Checks, when the host builds its pipeline, how Oncely is composed with the middleware around it (docs/composition.md):
/// refuses to start when <c>UseRouting()</c>, <c>UseAuthentication()</c> or <c>UseAuthorization()</c> is called after
/// <c>UseIdempotency()</c>, and warns about idempotent endpoints that also carry output-cache metadata.
/// </summary>
internal sealed partial class IdempotencyCompositionValidation(IdempotencyPipelineOrder order, ILogger<IdempotencyCompositionValidation> logger) : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        // WebApplication: UseIdempotency() already ran (in Program), and the framework has not added its own
        // middleware yet. A Startup class: UseIdempotency() runs inside next, and is checked after it.
        ThrowIfLate(order.FindLateCalls());
        next(app);
        ThrowIfLate(order.FindLateCalls());

        if (app.ApplicationServices.GetService<EndpointDataSource>() is { } endpoints)
        {
            WarnAboutOutputCaching(endpoints.Endpoints);
        }
    };

    internal void WarnAboutOutputCaching(IEnumerable<Endpoint> endpoints)
    {
        foreach (var endpoint in endpoints)
        {
            if (endpoint.Metadata.GetMetadata<IIdempotencyMetadata>() is null)
            {
                continue;
            }

            var cached = endpoint.Metadata.GetMetadata<OutputCacheAttribute>() is { NoStore: false }
                || endpoint.Metadata.GetMetadata<IOutputCachePolicy>() is not null;
            if (cached)
            {
                LogOutputCachedIdempotentEndpoint(logger, endpoint.DisplayName);
            }
        }
    }

    private static void ThrowIfLate(IReadOnlyList<string> late)
    {
        if (late.Count == 0)
        {
            return;
        }

        throw new InvalidOperationException(
            $"Oncely: {string.Join(" and ", late.Distinct())} {(late.Distinct().Count() == 1 ? "is" : "are")} called after UseIdempotency(), so the idempotency middleware would run before "
            + "the endpoint is known or the caller is authenticated and authorized: every caller would share one scope (or be refused with 401), and an "
            + "authorization refusal would be stored and replayed to later retries. Call app.UseIdempotency() after app.UseRouting(), app.UseAuthentication() "
            + "and app.UseAuthorization() (and after app.UseRateLimiter()); see docs/composition.md.");
    }
}
