using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;

namespace Oncely.Sqlite;

/// <summary>Configures the SQLite idempotency store.</summary>
public sealed partial class SqliteIdempotencyStoreOptions
{
    /// <summary>The longest table name accepted.</summary>
    internal const int MaxTableNameLength = 63;

    /// <summary>
    /// The Microsoft.Data.Sqlite connection string of the database file, for example <c>Data Source=/var/lib/app/oncely.db</c>.
    /// Required; there is no default. Connection pooling is on unless the string turns it off.
    /// </summary>
    public string ConnectionString { get; set; } = string.Empty;

    /// <summary>
    /// The table that holds the records. Default: <c>oncely_records</c>. Letters, digits and underscores only, starting
    /// with a letter or underscore, at most 63 characters; the store also creates <c>{TableName}_fence</c> (the fencing
    /// token counter) next to it.
    /// </summary>
    public string TableName { get; set; } = "oncely_records";

    /// <summary>
    /// The table that keeps the audit trail of keys reused with a different payload. Default: <c>oncely_key_reuse_audit</c>.
    /// Same naming rules as <see cref="TableName"/>.
    /// </summary>
    public string AuditTableName { get; set; } = "oncely_key_reuse_audit";

    /// <summary>
    /// How long one store call keeps retrying while the database is locked by another connection (SQLITE_BUSY /
    /// SQLITE_LOCKED) before it gives up with <see cref="IdempotencyStoreUnavailableException"/>. Default: 5 seconds.
    /// Must be positive and at most 10 minutes. Microsoft.Data.Sqlite retries a locked statement for at least one
    /// second on its own, so a value under one second still waits about one second. A locked statement changed
    /// nothing, so these retries never execute anything twice.
    /// </summary>
    public TimeSpan BusyTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Throws <see cref="ArgumentException"/> with a message that says what to change when the options are unusable.</summary>
    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(ConnectionString))
        {
            throw new ArgumentException(
                "SqliteIdempotencyStoreOptions.ConnectionString is required: set it to a SQLite connection string such as \"Data Source=oncely.db\".",
                nameof(ConnectionString));
        }

        SqliteConnectionStringBuilder parsed;
        try
        {
            parsed = new SqliteConnectionStringBuilder(ConnectionString);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"SqliteIdempotencyStoreOptions.ConnectionString is not a valid SQLite connection string: {e.Message}", nameof(ConnectionString), e);
        }

        var dataSource = parsed.DataSource;
        if (string.IsNullOrWhiteSpace(dataSource)
            || (string.Equals(dataSource.Trim(), ":memory:", StringComparison.OrdinalIgnoreCase) && parsed.Mode != SqliteOpenMode.Memory))
        {
            throw new ArgumentException(
                "SqliteIdempotencyStoreOptions.ConnectionString must name a database file (\"Data Source=oncely.db\"): a private in-memory " +
                "database would be a new, empty database on every connection. For tests, use \"Data Source=name;Mode=Memory;Cache=Shared\".",
                nameof(ConnectionString));
        }

        if (parsed.Mode == SqliteOpenMode.ReadOnly)
        {
            throw new ArgumentException("SqliteIdempotencyStoreOptions.ConnectionString opens the database read-only (Mode=ReadOnly); the store must write.", nameof(ConnectionString));
        }

        ValidateTableName(TableName, nameof(TableName));
        ValidateTableName(AuditTableName, nameof(AuditTableName));
        ValidateNamesDoNotCollide(TableName, AuditTableName);

        if (BusyTimeout <= TimeSpan.Zero || BusyTimeout > TimeSpan.FromMinutes(10))
        {
            throw new ArgumentOutOfRangeException(
                nameof(BusyTimeout),
                BusyTimeout,
                "SqliteIdempotencyStoreOptions.BusyTimeout must be positive and at most 10 minutes (default 5 seconds).");
        }
    }

    private static void ValidateTableName(string? name, string option)
    {
        if (name is null || name.Length > MaxTableNameLength || !IdentifierPattern().IsMatch(name))
        {
            throw new ArgumentException(
                string.Create(
                    CultureInfo.InvariantCulture,
                    $"SqliteIdempotencyStoreOptions.{option} '{name}' is not a safe table name: use letters, digits and underscores, starting with a letter or underscore, at most {MaxTableNameLength} characters."),
                option);
        }

        if (name.StartsWith("sqlite_", StringComparison.OrdinalIgnoreCase))
        {
            throw new ArgumentException($"SqliteIdempotencyStoreOptions.{option} '{name}' starts with 'sqlite_', a prefix SQLite reserves for itself; choose another name.", option);
        }
    }

    /// <summary>
    /// Refuses table names whose objects would share a name in the database: SQLite keeps tables and indexes in one
    /// namespace, case-insensitively, so such a pair passes the identifier rules and then breaks every request (the
    /// audit rows land in the fence table, or a CREATE silently finds the other object).
    /// </summary>
    private static void ValidateNamesDoNotCollide(string table, string auditTable)
    {
        // What the store creates for each option (see SqliteSchema).
        (string Name, string What)[] recordsObjects =
        [
            (table, "the records table (TableName)"),
            (table + "_fence", "the records table's fencing-token counter (TableName + \"_fence\")"),
            (table + "_expires_at", "the records table's expiry index (TableName + \"_expires_at\")"),
            (table + "_in_progress", "the records table's index of InProgress records (TableName + \"_in_progress\")"),
            (SqliteSchema.VersionTable, "the schema version table"),
        ];
        (string Name, string What)[] auditObjects =
        [
            (auditTable, "the audit table (AuditTableName)"),
            (auditTable + "_occurred_at", "the audit table's index (AuditTableName + \"_occurred_at\")"),
        ];

        foreach (var audit in auditObjects)
        {
            foreach (var records in recordsObjects)
            {
                if (string.Equals(audit.Name, records.Name, StringComparison.OrdinalIgnoreCase))
                {
                    throw new ArgumentException(
                        $"SqliteIdempotencyStoreOptions: {audit.What} and {records.What} would both be named '{audit.Name}' " +
                        $"(SQLite compares names case-insensitively). Choose another AuditTableName (default 'oncely_key_reuse_audit') or TableName (default 'oncely_records').",
                        nameof(AuditTableName));
                }
            }
        }

        if (string.Equals(table, SqliteSchema.VersionTable, StringComparison.OrdinalIgnoreCase))
        {
            throw new ArgumentException(
                $"SqliteIdempotencyStoreOptions.TableName '{table}' is the name of the store's schema version table; choose another TableName (default 'oncely_records').",
                nameof(TableName));
        }
    }

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$", RegexOptions.CultureInvariant)]
    private static partial Regex IdentifierPattern();

    /// <summary>Copies the options so later changes to the caller's instance do not reach a running store.</summary>
    internal SqliteIdempotencyStoreOptions Clone() => new()
    {
        ConnectionString = ConnectionString,
        TableName = TableName,
        AuditTableName = AuditTableName,
        BusyTimeout = BusyTimeout,
    };
}
