using System.Security.Claims;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features.Authentication;

namespace Oncely.AspNetCore;

internal static class DefaultTenantResolver
{
    public static string? Resolve(HttpContext context)
    {
        var user = UserIfAny(context);
        if (user?.Identity?.IsAuthenticated != true)
        {
            // The middleware refuses the caller (401) or, on an endpoint that opts in, uses the anonymous scope.
            return null;
        }

        // An authenticated caller without an id claim is a configuration problem: sharing one scope would let such
        // callers replay each other's answers, so it is refused instead (the middleware answers 500).
        var id = user.FindFirst(ClaimTypes.NameIdentifier)?.Value ?? user.FindFirst("sub")?.Value;
        return string.IsNullOrEmpty(id) ? null : id;
    }

    /// <summary>Whether the request's caller is authenticated, asked without making up an anonymous user.</summary>
    public static bool IsAuthenticated(HttpContext context) => UserIfAny(context)?.Identity?.IsAuthenticated == true;

    // The server's HttpContext makes up an empty, unauthenticated ClaimsPrincipal (with its identity, lists and feature,
    // about 320 bytes) the first time HttpContext.User is read when no authentication ran. No user set means not
    // authenticated, so the feature is read instead; another HttpContext implementation is asked for its User.
    private static ClaimsPrincipal? UserIfAny(HttpContext context)
        => context is DefaultHttpContext ? context.Features.Get<IHttpAuthenticationFeature>()?.User : context.User;
}
