using System.Security.Claims;
using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

internal static class DefaultTenantResolver
{
    public static string? Resolve(HttpContext context)
    {
        var user = context.User;
        if (user.Identity?.IsAuthenticated != true)
        {
            // The middleware refuses the caller (401) or, on an endpoint that opts in, uses the anonymous scope.
            return null;
        }

        // An authenticated caller without an id claim is a configuration problem: sharing one scope would let such
        // callers replay each other's answers, so it is refused instead (the middleware answers 500).
        var id = user.FindFirst(ClaimTypes.NameIdentifier)?.Value ?? user.FindFirst("sub")?.Value;
        return string.IsNullOrEmpty(id) ? null : id;
    }
}
