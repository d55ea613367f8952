namespace Oncely;

/// <summary>A snapshot of one record as the store holds it.</summary>
public sealed class IdempotencyRecord
{
    /// <summary>The record's identity.</summary>
    public required IdempotencyRecordId Id { get; init; }

    /// <summary>The request fingerprint the record was reserved with (lowercase hex SHA-256).</summary>
    public required string Fingerprint { get; init; }

    /// <summary>The record's state.</summary>
    public required IdempotencyRecordState State { get; init; }

    /// <summary>
    /// The fencing token of the execution that holds (or held) the lease. Unique over the record's life, including
    /// take-overs: a stale execution's token never matches again.
    /// </summary>
    public required long FencingToken { get; init; }

    /// <summary>When the InProgress lease ends, by the store's clock.</summary>
    public required DateTimeOffset LeaseExpiresAt { get; init; }

    /// <summary>When the record stops counting and may be purged, by the store's clock.</summary>
    public required DateTimeOffset ExpiresAt { get; init; }

    /// <summary>The last recovery point an execution committed, or <see langword="null"/>.</summary>
    public string? RecoveryPoint { get; init; }

    /// <summary>The stored first answer; set when <see cref="State"/> is <see cref="IdempotencyRecordState.Completed"/>.</summary>
    public IdempotentResponse? Response { get; init; }

    /// <summary>
    /// How many executions have held this record: 1 for the one that reserved it, one more for each take-over after a
    /// lease ran out or an operator released a record that had a recovery point. A record released without a recovery
    /// point is deleted, so the next execution starts again at 1. Stores written before this count existed report 1.
    /// </summary>
    public int Attempts { get; init; } = 1;

    /// <summary>When the record was created (kept across take-overs), for the in-memory store's administration.</summary>
    internal DateTimeOffset CreatedAt { get; init; }
}
