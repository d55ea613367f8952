using Microsoft.Extensions.DependencyInjection;

namespace Oncely.Sqlite;

/// <summary>Chooses the SQLite store on the builder returned by <c>AddIdempotency()</c>.</summary>
public static class SqliteIdempotencyBuilderExtensions
{
    /// <summary>
    /// Keeps idempotency records in the SQLite database that <paramref name="connectionString"/> names, with the default
    /// table names (<c>oncely_records</c>, <c>oncely_key_reuse_audit</c>) and a 5 second busy timeout.
    /// </summary>
    /// <param name="builder">The builder from <c>AddIdempotency()</c>.</param>
    /// <param name="connectionString">A Microsoft.Data.Sqlite connection string, for example <c>Data Source=oncely.db</c>.</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentException">The connection string is empty or unusable; the message says what to change.</exception>
    public static IIdempotencyBuilder UseSqlite(this IIdempotencyBuilder builder, string connectionString)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        return builder.UseSqlite(options => options.ConnectionString = connectionString);
    }

    /// <summary>
    /// Keeps idempotency records in a SQLite database configured by <paramref name="configure"/>. The options are
    /// validated here, so a misconfiguration fails at start-up with a message that says what to change. The store's
    /// clock is the <see cref="TimeProvider"/> registered in DI, or <see cref="TimeProvider.System"/>.
    /// </summary>
    /// <param name="builder">The builder from <c>AddIdempotency()</c>.</param>
    /// <param name="configure">Sets <see cref="SqliteIdempotencyStoreOptions.ConnectionString"/> (required) and any other option.</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentException">The options are unusable; the message says what to change.</exception>
    public static IIdempotencyBuilder UseSqlite(this IIdempotencyBuilder builder, Action<SqliteIdempotencyStoreOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        var options = new SqliteIdempotencyStoreOptions();
        configure(options);
        options.Validate();
        return builder.UseStore(sp => new SqliteIdempotencyStore(options, sp.GetService<TimeProvider>() ?? TimeProvider.System));
    }
}
