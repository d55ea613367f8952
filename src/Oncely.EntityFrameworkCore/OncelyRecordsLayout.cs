namespace Oncely.EntityFrameworkCore;

/// <summary>Which store created the records table, and so which column types <see cref="OncelyModelBuilderExtensions.ApplyOncelyRecords"/> maps.</summary>
public enum OncelyRecordsLayout
{
    /// <summary>The <c>Oncely.Sqlite</c> store: timestamps are integer Unix milliseconds; default table <c>oncely_records</c>, no schema.</summary>
    Sqlite = 0,

    /// <summary>The <c>Oncely.PostgreSql</c> store: <c>timestamptz</c> timestamps and <c>jsonb</c> headers; default schema <c>oncely</c>, table <c>idempotency_records</c>.</summary>
    PostgreSql = 1,
}

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
