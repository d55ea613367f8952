using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Oncely.PostgreSql;

/// <summary>Chooses PostgreSQL as the idempotency store: <c>services.AddIdempotency().UsePostgreSql(...)</c>.</summary>
public static class PostgreSqlIdempotencyBuilderExtensions
{
    /// <summary>
    /// Stores idempotency records in PostgreSQL, connecting with <paramref name="connectionString"/> through a data source
    /// the store builds and owns. Schema <c>oncely</c>, table <c>idempotency_records</c>, command timeout 5 seconds; the
    /// schema is created on first use.
    /// </summary>
    /// <param name="builder">The builder from <c>AddIdempotency()</c>.</param>
    /// <param name="connectionString">An Npgsql connection string, for example <c>Host=db;Database=app;Username=app</c>.</param>
    /// <returns>The same builder.</returns>
    public static IIdempotencyBuilder UsePostgreSql(this IIdempotencyBuilder builder, string connectionString)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        return builder.UsePostgreSql(options => options.ConnectionString = connectionString);
    }

    /// <summary>
    /// Stores idempotency records in PostgreSQL as <paramref name="configure"/> says. With neither
    /// <see cref="PostgreSqlIdempotencyStoreOptions.DataSource"/> nor <see cref="PostgreSqlIdempotencyStoreOptions.ConnectionString"/>
    /// set, the store uses the <see cref="NpgsqlDataSource"/> registered in the application's services
    /// (for example by <c>AddNpgsqlDataSource</c>). The options are validated here, so a mistake fails at start-up.
    /// </summary>
    /// <param name="builder">The builder from <c>AddIdempotency()</c>.</param>
    /// <param name="configure">Sets the options.</param>
    /// <returns>The same builder.</returns>
    public static IIdempotencyBuilder UsePostgreSql(this IIdempotencyBuilder builder, Action<PostgreSqlIdempotencyStoreOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        var options = new PostgreSqlIdempotencyStoreOptions();
        configure(options);
        options.Validate();
        return builder.UseStore(services => CreateStore(services, options));
    }

    /// <summary>
    /// The store runs the same few statements on every request, so a data source it builds itself keeps them prepared
    /// on each physical connection (parsed and planned once, not per call): <c>Max Auto Prepare</c> is set to
    /// <see cref="AutoPrepareStatements"/> unless the connection string sets it itself (to any value, 0 included).
    /// </summary>
    internal static string WithAutoPrepare(string connectionString)
    {
        // An explicit "Max Auto Prepare=0" (say, for an old PgBouncer in transaction mode) is kept as it is.
        var given = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString };
        if (given.ContainsKey("Max Auto Prepare") || given.ContainsKey("MaxAutoPrepare"))
        {
            return connectionString;
        }

        var builder = new NpgsqlConnectionStringBuilder(connectionString) { MaxAutoPrepare = AutoPrepareStatements };
        return builder.ConnectionString;
    }

    /// <summary>How many statements a data source the store builds keeps prepared per connection.</summary>
    internal const int AutoPrepareStatements = 32;

    internal static PostgreSqlIdempotencyStore CreateStore(IServiceProvider services, PostgreSqlIdempotencyStoreOptions options)
    {
        if (options.DataSource is { } given)
        {
            return new PostgreSqlIdempotencyStore(given, ownsDataSource: false, options);
        }

        if (options.ConnectionString is { } connectionString)
        {
            NpgsqlDataSource? built = null;
            try
            {
                built = NpgsqlDataSource.Create(WithAutoPrepare(connectionString));
                var store = new PostgreSqlIdempotencyStore(built, ownsDataSource: true, options);
                built = null;
                return store;
            }
            finally
            {
                built?.Dispose();
            }
        }

        var fromServices = services.GetService<NpgsqlDataSource>()
            ?? throw new InvalidOperationException(
                "UsePostgreSql found no database to connect to: set PostgreSqlIdempotencyStoreOptions.ConnectionString or .DataSource, or register an NpgsqlDataSource in the services (for example with AddNpgsqlDataSource).");
        return new PostgreSqlIdempotencyStore(fromServices, ownsDataSource: false, options);
    }
}
