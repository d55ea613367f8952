namespace Oncely;

/// <summary>Which records <see cref="IIdempotencyStoreAdministration.ListRecordsAsync"/> returns.</summary>
public sealed record IdempotencyRecordQuery
{
    /// <summary>Only this tenant's records; default all tenants (<see langword="null"/>).</summary>
    public string? Tenant { get; init; }

    /// <summary>Only records in this state; default any state (<see langword="null"/>).</summary>
    public IdempotencyRecordState? State { get; init; }

    /// <summary>Only this operation's records (exact name); default any operation (<see langword="null"/>).</summary>
    public string? Operation { get; init; }

    /// <summary>Only records created at or before this instant (older than a given age); default no bound.</summary>
    public DateTimeOffset? CreatedBefore { get; init; }

    /// <summary>The page size, 1 to 500; default 50.</summary>
    public int Limit { get; init; } = 50;

    /// <summary>
    /// Where to continue: <see cref="IdempotencyRecordPage.Continuation"/> of the previous page, or <see langword="null"/>
    /// for the first page. Opaque; only valid for the store that produced it and the same filters.
    /// </summary>
    public string? Continuation { get; init; }
}
