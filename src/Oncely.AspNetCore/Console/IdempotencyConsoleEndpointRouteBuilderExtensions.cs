using System.Diagnostics.CodeAnalysis;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Oncely.AspNetCore;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Maps Oncely's operator console: a page in the browser over the operator API.</summary>
public static class IdempotencyConsoleEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Serves the operator console under <paramref name="prefix"/>: an HTML page, a style sheet and JavaScript modules
    /// embedded in this assembly (no build step, no CDN), sent with a strict Content-Security-Policy
    /// (<c>default-src 'self'</c>, no inline script or style, <c>frame-ancestors 'none'</c>),
    /// <c>X-Content-Type-Options: nosniff</c>, <c>Cache-Control: no-cache</c> with an <c>ETag</c>, and no cookies.
    /// The files hold no data, so they are served to anyone (the endpoints allow anonymous callers); every piece of data
    /// comes from the operator API (<c>MapIdempotencyAdmin</c>) with the credential the operator types into the page,
    /// so the operator API's authorization stays the only gate.
    /// </summary>
    /// <param name="endpoints">The application (or a route group) to map into.</param>
    /// <param name="prefix">Where the page lives; <c>{prefix}</c> redirects to <c>{prefix}/</c>. Default: <c>/admin/idempotency/console</c>.</param>
    /// <param name="configure">Changes <see cref="IdempotencyConsoleOptions"/> (the operator API's prefix, the credential header). Default: none.</param>
    /// <returns>The console's route group (for host filters, rate limits and the like).</returns>
    /// <exception cref="ArgumentException">An option is empty or not a usable value (the message says which).</exception>
    public static RouteGroupBuilder MapIdempotencyConsole(
        this IEndpointRouteBuilder endpoints,
        [StringSyntax("Route")] string prefix = "/admin/idempotency/console",
        Action<IdempotencyConsoleOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrWhiteSpace(prefix);
        var options = new IdempotencyConsoleOptions();
        configure?.Invoke(options);
        var files = new IdempotencyConsoleFiles(options);
        var group = endpoints.MapGroup(prefix);
        group.WithMetadata(new AllowAnonymousAttribute());
        group.ExcludeFromDescription();
        string[] methods = [HttpMethods.Get, HttpMethods.Head];
        // RequestDelegates, not minimal-API delegates: no RequestDelegateFactory reflection, so Native AOT and trimming stay clean.
        group.MapMethods("/", methods, new RequestDelegate(files.ServePageAsync)).WithDisplayName($"Oncely operator console ({prefix})");
        group.MapMethods("/{file}", methods, new RequestDelegate(context => files.ServeFileAsync(context, context.Request.RouteValues["file"] as string ?? string.Empty))).WithDisplayName($"Oncely operator console files ({prefix})");
        return group;
    }
}
