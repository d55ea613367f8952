namespace Oncely;

/// <summary>
/// One record as the operator API shows it: its state and timing, never its stored body or headers.
/// </summary>
/// <param name="Id">Tenant, operation and key.</param>
/// <param name="State">InProgress or Completed.</param>
/// <param name="FencingToken">The current holder's token; pass it back to release the record (fenced).</param>
/// <param name="Fingerprint">The fingerprint of the payload that reserved the record (a hash, not the payload).</param>
/// <param name="CreatedAt">When the record was created (store clock).</param>
/// <param name="LeaseExpiresAt">When the current lease ends; meaningful for InProgress records.</param>
/// <param name="ExpiresAt">When the record expires and is purged.</param>
/// <param name="RecoveryPoint">The last committed phase, when the operation set one.</param>
/// <param name="StatusCode">The stored answer's status code, for Completed records.</param>
/// <param name="Attempts">How many executions have held the record (<see cref="IdempotencyRecord.Attempts"/>).</param>
public sealed record IdempotencyRecordSummary(
    IdempotencyRecordId Id,
    IdempotencyRecordState State,
    long FencingToken,
    string Fingerprint,
    DateTimeOffset CreatedAt,
    DateTimeOffset LeaseExpiresAt,
    DateTimeOffset ExpiresAt,
    string? RecoveryPoint,
    int? StatusCode,
    int Attempts = 1);
