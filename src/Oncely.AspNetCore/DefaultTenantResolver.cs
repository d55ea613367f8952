using System.Security.Claims;
using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

internal static class DefaultTenantResolver
{
    public const string Anonymous = "anonymous";

    public static string? Resolve(HttpContext context)
    {
        var user = context.User;
        if (user.Identity?.IsAuthenticated != true)
        {
            return Anonymous;
        }

        // An authenticated caller without an id claim is a configuration problem: sharing "anonymous" would let
        // such callers replay each other's answers, so it is refused instead (the middleware answers 500).
        var id = user.FindFirst(ClaimTypes.NameIdentifier)?.Value ?? user.FindFirst("sub")?.Value;
        return string.IsNullOrEmpty(id) ? null : id;
    }
}
