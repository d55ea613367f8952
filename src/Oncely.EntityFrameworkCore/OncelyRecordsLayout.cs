namespace Oncely.EntityFrameworkCore;

/// <summary>Which store created the records table, and so which column types <see cref="OncelyModelBuilderExtensions.ApplyOncelyRecords"/> maps.</summary>
public enum OncelyRecordsLayout
{
    /// <summary>The <c>Oncely.Sqlite</c> store: timestamps are integer Unix milliseconds; default table <c>oncely_records</c>, no schema.</summary>
    Sqlite = 0,

    /// <summary>The <c>Oncely.PostgreSql</c> store: <c>timestamptz</c> timestamps and <c>jsonb</c> headers; default schema <c>oncely</c>, table <c>idempotency_records</c>.</summary>
    PostgreSql = 1,
}
