using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace Oncely.EntityFrameworkCore;

/// <summary>Maps Oncely's idempotency record into the application's own <see cref="DbContext"/>.</summary>
public static partial class OncelyModelBuilderExtensions
{
    /// <summary>The SQLite store's default records table, <c>oncely_records</c>.</summary>
    public const string DefaultSqliteTableName = "oncely_records";

    /// <summary>The PostgreSQL store's default records table, <c>idempotency_records</c>.</summary>
    public const string DefaultPostgreSqlTableName = "idempotency_records";

    /// <summary>The model annotation that remembers which layout was mapped.</summary>
    internal const string LayoutAnnotation = "Oncely:RecordsLayout";

    /// <summary>The PostgreSQL store's default schema, <c>oncely</c>.</summary>
    public const string DefaultPostgreSqlSchema = "oncely";

    /// <summary>
    /// Maps <see cref="IdempotencyRecordEntity"/> onto the records table the Oncely store creates, with the store's
    /// column names and types, <c>(tenant, operation, idem_key)</c> as the key, and the fencing token and state as
    /// concurrency tokens. The table is excluded from migrations (and from <c>EnsureCreated</c>): the store creates and
    /// migrates it. Call it from <c>OnModelCreating</c>.
    /// </summary>
    /// <param name="modelBuilder">The application's model builder.</param>
    /// <param name="layout">Which store created the table (SQLite or PostgreSQL).</param>
    /// <param name="configure">Sets the table and schema when the store's options changed them; default: the store's defaults.</param>
    /// <returns>The same model builder.</returns>
    /// <exception cref="ArgumentException">A name is unsafe, or a schema was given for SQLite.</exception>
    public static ModelBuilder ApplyOncelyRecords(this ModelBuilder modelBuilder, OncelyRecordsLayout layout, Action<OncelyRecordsModelOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(modelBuilder);
        var options = new OncelyRecordsModelOptions();
        configure?.Invoke(options);
        var table = options.TableName ?? (layout == OncelyRecordsLayout.PostgreSql ? DefaultPostgreSqlTableName : DefaultSqliteTableName);
        string? schema;
        switch (layout)
        {
            case OncelyRecordsLayout.Sqlite:
                if (options.Schema is not null)
                {
                    throw new ArgumentException("OncelyRecordsModelOptions.Schema must stay null for SQLite: the SQLite store has no schema.", nameof(configure));
                }

                schema = null;
                break;
            case OncelyRecordsLayout.PostgreSql:
                schema = options.Schema ?? DefaultPostgreSqlSchema;
                ValidateIdentifier(schema, nameof(OncelyRecordsModelOptions.Schema));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(layout), layout, "Use OncelyRecordsLayout.Sqlite or OncelyRecordsLayout.PostgreSql.");
        }

        ValidateIdentifier(table, nameof(OncelyRecordsModelOptions.TableName));
        modelBuilder.Entity<IdempotencyRecordEntity>(entity => Configure(entity, layout, table, schema));
        return modelBuilder;
    }

    private static void Configure(EntityTypeBuilder<IdempotencyRecordEntity> entity, OncelyRecordsLayout layout, string table, string? schema)
    {
        entity.HasAnnotation(LayoutAnnotation, layout.ToString());
        entity.ToTable(table, schema, t => t.ExcludeFromMigrations());
        entity.HasKey(e => new { e.Tenant, e.Operation, e.Key });
        entity.Property(e => e.Tenant).HasColumnName("tenant").ValueGeneratedNever();
        entity.Property(e => e.Operation).HasColumnName("operation").ValueGeneratedNever();
        entity.Property(e => e.Key).HasColumnName("idem_key").ValueGeneratedNever();
        entity.Property(e => e.Fingerprint).HasColumnName("fingerprint").IsRequired();
        entity.Property(e => e.FencingToken).HasColumnName("fencing_token").IsConcurrencyToken().ValueGeneratedNever();
        entity.Property(e => e.RecoveryPoint).HasColumnName("recovery_point");

        // The store's count of executions (1 at reservation, + 1 per take-over). Always sent as set: never generated here.
        entity.Property(e => e.Attempts).HasColumnName("attempts").HasColumnType(layout == OncelyRecordsLayout.PostgreSql ? "integer" : "INTEGER")
            .IsRequired().HasDefaultValue(1).ValueGeneratedNever();
        entity.Property(e => e.StatusCode).HasColumnName("status_code");
        entity.Property(e => e.Body).HasColumnName("body");
        entity.Property(e => e.BodyOmitted).HasColumnName("body_omitted");

        if (layout == OncelyRecordsLayout.PostgreSql)
        {
            entity.Property(e => e.State).HasColumnName("state").HasConversion<short>().HasColumnType("smallint").IsConcurrencyToken();
            entity.Property(e => e.LeaseExpiresAt).HasColumnName("lease_expires_at").HasColumnType("timestamptz");
            entity.Property(e => e.ExpiresAt).HasColumnName("expires_at").HasColumnType("timestamptz");
            entity.Property(e => e.UpdatedAt).HasColumnName("updated_at").HasColumnType("timestamptz");
            entity.Property(e => e.Headers).HasColumnName("headers").HasColumnType("jsonb");
        }
        else
        {
            entity.Property(e => e.State).HasColumnName("state").HasConversion<long>().IsConcurrencyToken();
            entity.Property(e => e.LeaseExpiresAt).HasColumnName("lease_expires_at").HasConversion(UnixMilliseconds.ToStore, UnixMilliseconds.FromStore);
            entity.Property(e => e.ExpiresAt).HasColumnName("expires_at").HasConversion(UnixMilliseconds.ToStore, UnixMilliseconds.FromStore);
            entity.Property(e => e.Headers).HasColumnName("headers");
            entity.Ignore(e => e.UpdatedAt);
        }
    }

    private static void ValidateIdentifier(string name, string option)
    {
        if (name.Length is 0 or > 63 || !Identifier().IsMatch(name))
        {
            throw new ArgumentException(
                $"OncelyRecordsModelOptions.{option} '{name}' is not a safe name: use letters, digits and underscores, starting with a letter or underscore, at most 63 characters (the same value as the store's option).",
                option);
        }
    }

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$", RegexOptions.CultureInvariant)]
    private static partial Regex Identifier();
}
