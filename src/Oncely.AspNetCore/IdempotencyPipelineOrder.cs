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
