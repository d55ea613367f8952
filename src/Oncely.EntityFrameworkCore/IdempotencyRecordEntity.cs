namespace Oncely.EntityFrameworkCore;

/// <summary>
/// The idempotency record as an EF Core entity, mapped by <see cref="OncelyModelBuilderExtensions.ApplyOncelyRecords"/>
/// onto the table the SQLite or PostgreSQL store creates and owns. The application never inserts or deletes it: it only
/// lets <see cref="IdempotencyExecutionDbContextExtensions.StageCompletionAsync"/> turn the caller's InProgress record
/// into a Completed one inside its own <c>SaveChangesAsync</c>.
/// </summary>
/// <remarks>
/// <see cref="FencingToken"/> and <see cref="State"/> are concurrency tokens, so the <c>UPDATE</c> EF Core sends is
/// guarded exactly like the store's own completion: <c>WHERE … AND fencing_token = @token AND state = InProgress</c>.
/// </remarks>
public sealed class IdempotencyRecordEntity
{
    /// <summary>Who called (column <c>tenant</c>).</summary>
    public string Tenant { get; set; } = string.Empty;

    /// <summary>The operation: method and route pattern (column <c>operation</c>).</summary>
    public string Operation { get; set; } = string.Empty;

    /// <summary>The client's idempotency key (column <c>idem_key</c>).</summary>
    public string Key { get; set; } = string.Empty;

    /// <summary>The request fingerprint the record was reserved with (column <c>fingerprint</c>).</summary>
    public string Fingerprint { get; set; } = string.Empty;

    /// <summary>InProgress or Completed (column <c>state</c>); a concurrency token.</summary>
    public IdempotencyRecordState State { get; set; }

    /// <summary>The holder's fencing token (column <c>fencing_token</c>); a concurrency token.</summary>
    public long FencingToken { get; set; }

    /// <summary>When the holder's lease ends (column <c>lease_expires_at</c>). Only the store changes it.</summary>
    public DateTimeOffset LeaseExpiresAt { get; set; }

    /// <summary>When the record is purged (column <c>expires_at</c>).</summary>
    public DateTimeOffset ExpiresAt { get; set; }

    /// <summary>The last committed phase (column <c>recovery_point</c>), or <see langword="null"/>.</summary>
    public string? RecoveryPoint { get; set; }

    /// <summary>
    /// How many executions have held the record (column <c>attempts</c>, integer, default 1): 1 for the one that
    /// reserved it, one more for each take-over. Only the store changes it; a staged completion keeps it.
    /// </summary>
    public int Attempts { get; set; } = 1;

    /// <summary>The stored status code (column <c>status_code</c>), set once Completed.</summary>
    public int? StatusCode { get; set; }

    /// <summary>The stored headers as a JSON array of <c>[name, value]</c> pairs (column <c>headers</c>).</summary>
    public string? Headers { get; set; }

    /// <summary>The stored body (column <c>body</c>).</summary>
    public byte[]? Body { get; set; }

    /// <summary><see langword="true"/> when the body was too large to keep (column <c>body_omitted</c>).</summary>
    public bool BodyOmitted { get; set; }

    /// <summary>When the row last changed (column <c>updated_at</c>; PostgreSQL layout only, ignored for SQLite).</summary>
    public DateTimeOffset UpdatedAt { get; set; }
}
