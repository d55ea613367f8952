namespace Oncely.AspNetCore;

/// <summary>Marks the operator API's endpoints, for the start-up checks.</summary>
internal sealed class IdempotencyAdminEndpointMetadata
{
    public static readonly IdempotencyAdminEndpointMetadata Instance = new();
}
