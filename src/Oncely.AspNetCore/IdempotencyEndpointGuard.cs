using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>
/// Makes an idempotent endpoint fail closed when the idempotency middleware did not handle its request, the way
/// ASP.NET Core refuses an endpoint with authorization metadata when the authorization middleware did not run.
/// </summary>
internal static class IdempotencyEndpointGuard
{
    public static readonly object Marker = new GuardMarker();

    public static void MarkHandled(HttpContext context) => context.Features.Set(HandledFeature.Instance);

    public static void EnsureHandled(HttpContext context)
    {
        if (context.Features.Get<HandledFeature>() is null)
        {
            throw new InvalidOperationException(
                $"Endpoint {context.GetEndpoint()?.DisplayName} is idempotent, but the idempotency middleware did not handle the request, so it was refused " +
                "rather than run unprotected. Call app.UseIdempotency() after app.UseRouting() (and after UseAuthentication/UseAuthorization), " +
                "or, when UseRouting() is not called explicitly, anywhere before the endpoints are mapped.");
        }
    }

    private sealed class GuardMarker;

    private sealed class HandledFeature
    {
        public static readonly HandledFeature Instance = new();
    }
}
