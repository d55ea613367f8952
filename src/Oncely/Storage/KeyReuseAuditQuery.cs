namespace Oncely;

/// <summary>Which audit entries <see cref="IIdempotencyStoreAdministration.ListAuditAsync"/> returns.</summary>
public sealed record KeyReuseAuditQuery
{
    /// <summary>Only this tenant's entries; default all (<see langword="null"/>).</summary>
    public string? Tenant { get; init; }

    /// <summary>Only this operation's entries; default all (<see langword="null"/>).</summary>
    public string? Operation { get; init; }

    /// <summary>Only entries for this key; default all (<see langword="null"/>).</summary>
    public string? Key { get; init; }

    /// <summary>The page size, 1 to 500; default 50.</summary>
    public int Limit { get; init; } = 50;

    /// <summary>Where to continue: the previous page's <see cref="KeyReuseAuditPage.Continuation"/>; opaque.</summary>
    public string? Continuation { get; init; }
}
