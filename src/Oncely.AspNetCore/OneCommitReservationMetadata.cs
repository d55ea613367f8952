namespace Oncely.AspNetCore;

/// <summary>Added by <c>WithOneCommitReservation()</c>: the handler reserves inside its own transaction.</summary>
internal sealed class OneCommitReservationMetadata
{
    public static readonly OneCommitReservationMetadata Instance = new();
}
