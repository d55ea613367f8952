namespace Oncely.EntityFrameworkCore;

/// <summary>Where the records table is, for <see cref="OncelyModelBuilderExtensions.ApplyOncelyRecords"/>. Must match the store's own options.</summary>
public sealed class OncelyRecordsModelOptions
{
    /// <summary>
    /// The records table. Default <see langword="null"/>: the store's default, <c>oncely_records</c> (SQLite) or
    /// <c>idempotency_records</c> (PostgreSQL). Set it to the store's <c>TableName</c> when you changed that.
    /// </summary>
    public string? TableName { get; set; }

    /// <summary>
    /// The schema (PostgreSQL only). Default <see langword="null"/>: <c>oncely</c>, the PostgreSQL store's default. Set it
    /// to the store's <c>Schema</c> when you changed that. Must stay <see langword="null"/> for SQLite.
    /// </summary>
    public string? Schema { get; set; }
}
