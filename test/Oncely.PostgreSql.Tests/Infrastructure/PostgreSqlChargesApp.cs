using Npgsql;
using Oncely.AspNetCore;
using Oncely.Storage.Specification;

namespace Oncely.PostgreSql.Tests.Infrastructure;

/// <summary>
/// Starts a <see cref="ChargesApp"/> on PostgreSQL: the instance has its own <see cref="NpgsqlDataSource"/> (its own pool,
/// disposed with the app) for both the store and its charges, which are rows in the same database.
/// </summary>
public static class PostgreSqlChargesApp
{
    /// <summary>Starts an instance on its own data source for <paramref name="connectionString"/>.</summary>
    /// <param name="name">Written into each charge, so a replay shows which instance executed it.</param>
    /// <param name="connectionString">The shared database (its <c>charges</c> table created already).</param>
    /// <param name="handlerDelay">Work before the effect: widens the window in which retries race the execution.</param>
    /// <param name="configureStore">Changes the store's options (the data source is set already).</param>
    /// <param name="configureIdempotency">Changes the middleware's and engine's options.</param>
    public static Task<ChargesApp> StartAsync(
        string name,
        string connectionString,
        TimeSpan handlerDelay,
        Action<PostgreSqlIdempotencyStoreOptions>? configureStore = null,
        Action<IdempotencyOptions>? configureIdempotency = null)
    {
        var dataSource = NpgsqlDataSource.Create(connectionString);
        return ChargesApp.StartAsync(
            name,
            new PostgreSqlChargeLedger(dataSource),
            handlerDelay,
            idempotency => idempotency.UsePostgreSql(o =>
            {
                o.DataSource = dataSource;
                configureStore?.Invoke(o);
            }),
            configureIdempotency,
            owned: dataSource);
    }
}
