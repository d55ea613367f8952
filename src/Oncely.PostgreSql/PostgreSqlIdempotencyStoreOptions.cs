using Npgsql;

namespace Oncely.PostgreSql;

/// <summary>
/// Configures the PostgreSQL idempotency store: where it connects, where its tables live and how long one call may take.
/// </summary>
public sealed class PostgreSqlIdempotencyStoreOptions
{
    /// <summary>The default schema, <c>oncely</c>.</summary>
    public const string DefaultSchema = "oncely";

    /// <summary>The default table name, <c>idempotency_records</c>.</summary>
    public const string DefaultTableName = "idempotency_records";

    /// <summary>The longest table name accepted, so derived names (sequence, audit table, indexes) stay within PostgreSQL's 63 characters.</summary>
    public const int MaxTableNameLength = 40;

    /// <summary>
    /// The data source the store uses. Default <see langword="null"/>: the store builds one from
    /// <see cref="ConnectionString"/>, or, when that is also unset, resolves <see cref="NpgsqlDataSource"/> from the
    /// application's services. A data source given here is not disposed by the store.
    /// </summary>
    public NpgsqlDataSource? DataSource { get; set; }

    /// <summary>
    /// A connection string the store builds (and owns) its own data source from. Default <see langword="null"/>.
    /// Ignored when <see cref="DataSource"/> is set.
    /// </summary>
    public string? ConnectionString { get; set; }

    /// <summary>
    /// The schema holding the store's tables; created when missing. Default <c>oncely</c>. Letters, digits and
    /// underscores, starting with a letter or underscore, at most 63 characters; case is kept (the name is quoted).
    /// </summary>
    public string Schema { get; set; } = DefaultSchema;

    /// <summary>
    /// The records table; created when missing, together with <c>{TableName}_fencing_seq</c>,
    /// <c>{TableName}_key_reuse_audit</c> and <c>{TableName}_schema_version</c>. Default <c>idempotency_records</c>.
    /// Letters, digits and underscores, starting with a letter or underscore, at most 40 characters; case is kept.
    /// </summary>
    public string TableName { get; set; } = DefaultTableName;

    /// <summary>
    /// The most time one store call may take before it fails with <see cref="IdempotencyStoreUnavailableException"/>
    /// (the caller then fails closed). Default 5 seconds; at least 1 second.
    /// </summary>
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Whether the store prepares its statements on each physical connection (parsed and planned once per connection,
    /// then only bound and executed), whatever the data source's <c>Max Auto Prepare</c>. Default <see langword="true"/>:
    /// every payment runs the same few statements, and the reservation's planning alone costs more server time than
    /// its execution. Npgsql keeps prepared statements across pooled connection reuse (its reset then spares them).
    /// Set <see langword="false"/> behind a connection pooler that does not support prepared statements in transaction
    /// mode (PgBouncer before 1.21, or with <c>max_prepared_statements = 0</c>).
    /// </summary>
    public bool PrepareStatements { get; set; } = true;

    /// <summary>Throws <see cref="InvalidOperationException"/> with a message that says what to change when the options are unusable.</summary>
    internal void Validate()
    {
        ValidateIdentifier(Schema, nameof(Schema), 63);
        ValidateIdentifier(TableName, nameof(TableName), MaxTableNameLength);
        if (CommandTimeout < TimeSpan.FromSeconds(1) || CommandTimeout > TimeSpan.FromHours(1))
        {
            throw new InvalidOperationException(
                $"PostgreSqlIdempotencyStoreOptions.CommandTimeout is {CommandTimeout}; set it between 1 second and 1 hour (default 5 seconds).");
        }

        if (DataSource is null && ConnectionString is not null && string.IsNullOrWhiteSpace(ConnectionString))
        {
            throw new InvalidOperationException(
                "PostgreSqlIdempotencyStoreOptions.ConnectionString is empty; give a connection string such as \"Host=db;Database=app;Username=app\", set DataSource, or leave both unset to use the NpgsqlDataSource registered in the services.");
        }
    }

    private static void ValidateIdentifier(string? value, string name, int maxLength)
    {
        if (string.IsNullOrEmpty(value) || value.Length > maxLength || !IsIdentifier(value))
        {
            throw new InvalidOperationException(
                $"PostgreSqlIdempotencyStoreOptions.{name} is \"{value}\"; use 1 to {maxLength} letters (a-z, A-Z), digits and underscores, starting with a letter or an underscore.");
        }
    }

    private static bool IsIdentifier(string value)
    {
        if (char.IsAsciiDigit(value[0]))
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c != '_')
            {
                return false;
            }
        }

        return true;
    }
}
