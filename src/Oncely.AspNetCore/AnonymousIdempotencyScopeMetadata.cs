namespace Oncely.AspNetCore;

/// <summary>Added by <c>AllowAnonymousIdempotency()</c>: unauthenticated callers share the anonymous scope.</summary>
internal sealed class AnonymousIdempotencyScopeMetadata
{
    public static readonly AnonymousIdempotencyScopeMetadata Instance = new();
}
