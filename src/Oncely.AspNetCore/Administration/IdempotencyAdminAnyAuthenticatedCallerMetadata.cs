namespace Oncely.AspNetCore;

/// <summary>
/// Marks an operator API group whose application chose, on purpose, to let any authenticated caller use it
/// (<c>AllowAnyAuthenticatedCallerAsOperator()</c>), for the start-up checks.
/// </summary>
internal sealed class IdempotencyAdminAnyAuthenticatedCallerMetadata
{
    public static readonly IdempotencyAdminAnyAuthenticatedCallerMetadata Instance = new();
}
