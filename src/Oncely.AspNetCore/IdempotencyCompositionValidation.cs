using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.OutputCaching;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Oncely.AspNetCore;

/// <summary>
/// Where <c>UseIdempotency()</c> was called, relative to the middleware it depends on. Each call records what the
/// pipeline already had; <see cref="IdempotencyCompositionValidation"/> later sees what was added after it.
/// </summary>
internal sealed class IdempotencyPipelineOrder
{
    // The properties ASP.NET Core's own extensions set when the application calls them (WebApplication reads them to
    // decide whether to add the middleware itself, at the start of the pipeline).
    internal const string AuthenticationSetKey = "__AuthenticationMiddlewareSet";
    internal const string AuthorizationSetKey = "__AuthorizationMiddlewareSet";
    internal const string RoutingSetKey = "__EndpointRouteBuilder";

    private readonly List<Position> _positions = [];

    public void Record(IApplicationBuilder app)
    {
        var properties = app.Properties;
        lock (_positions)
        {
            _positions.Add(new Position(
                app,
                properties.ContainsKey(AuthenticationSetKey),
                properties.ContainsKey(AuthorizationSetKey),
                properties.ContainsKey(RoutingSetKey)));
        }
    }

    /// <summary>
    /// The middleware the application added after a <c>UseIdempotency()</c> call that must come before it. Each
    /// position is checked once: positions recorded before the host builds its pipeline are checked before the
    /// framework adds its own middleware (whose markers would otherwise look like late calls).
    /// </summary>
    public IReadOnlyList<string> FindLateCalls()
    {
        var late = new List<string>();
        lock (_positions)
        {
            foreach (var position in _positions.Where(p => !p.Checked))
            {
                position.Checked = true;
                var properties = position.App.Properties;
                if (!position.Routing && properties.ContainsKey(RoutingSetKey))
                {
                    late.Add("UseRouting()");
                }

                if (!position.Authentication && properties.ContainsKey(AuthenticationSetKey))
                {
                    late.Add("UseAuthentication()");
                }

                if (!position.Authorization && properties.ContainsKey(AuthorizationSetKey))
                {
                    late.Add("UseAuthorization()");
                }
            }
        }

        return late;
    }

    private sealed class Position(IApplicationBuilder app, bool authentication, bool authorization, bool routing)
    {
        public IApplicationBuilder App { get; } = app;

        public bool Authentication { get; } = authentication;

        public bool Authorization { get; } = authorization;

        public bool Routing { get; } = routing;

        public bool Checked { get; set; }
    }
}

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

    [LoggerMessage(IdempotencyEventIds.OutputCachedIdempotentEndpoint, LogLevel.Warning, "Endpoint {Endpoint} is idempotent and also output-cached: a cached answer is served without Oncely seeing the request, so a new Idempotency-Key could get another operation's answer without anything running. Remove CacheOutput()/[OutputCache] from effectful endpoints (the default output-cache policy never caches POST anyway); see docs/composition.md")]
    private static partial void LogOutputCachedIdempotentEndpoint(ILogger logger, string? endpoint);
}
