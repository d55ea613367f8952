using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Oncely.StackExchangeRedis;

/// <summary>Chooses Redis as the idempotency store: <c>services.AddIdempotency().UseStackExchangeRedis(...)</c>.</summary>
public static class RedisIdempotencyBuilderExtensions
{
    /// <summary>
    /// Stores idempotency records in Redis (standalone, with replicas, or Redis Cluster), connecting with
    /// <paramref name="configuration"/> through a connection the store makes on first use and owns. Key prefix
    /// <c>oncely</c>, call timeout 5 seconds, and, when the topology has replicas, every progress write waits for one of
    /// them (<see cref="RedisIdempotencyStoreOptions.ReplicaAcknowledgements"/>).
    /// </summary>
    /// <param name="builder">The builder from <c>AddIdempotency()</c>.</param>
    /// <param name="configuration">A StackExchange.Redis configuration string, for example <c>redis:6379</c>.</param>
    /// <returns>The same builder.</returns>
    public static IIdempotencyBuilder UseStackExchangeRedis(this IIdempotencyBuilder builder, string configuration)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(configuration);
        return builder.UseStackExchangeRedis(options => options.Configuration = configuration);
    }

    /// <summary>
    /// Stores idempotency records in Redis as <paramref name="configure"/> says. With neither
    /// <see cref="RedisIdempotencyStoreOptions.ConnectionMultiplexer"/> nor <see cref="RedisIdempotencyStoreOptions.Configuration"/>
    /// set, the store uses the <see cref="IConnectionMultiplexer"/> registered in the application's services. The options
    /// are validated here, so a mistake fails at start-up.
    /// </summary>
    /// <param name="builder">The builder from <c>AddIdempotency()</c>.</param>
    /// <param name="configure">Sets the options.</param>
    /// <returns>The same builder.</returns>
    public static IIdempotencyBuilder UseStackExchangeRedis(this IIdempotencyBuilder builder, Action<RedisIdempotencyStoreOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        var options = new RedisIdempotencyStoreOptions();
        configure(options);
        options.Validate();
        return builder.UseStore(services => CreateStore(services, options));
    }

    internal static RedisIdempotencyStore CreateStore(IServiceProvider services, RedisIdempotencyStoreOptions options)
    {
        var logger = services.GetService<ILoggerFactory>()?.CreateLogger<RedisIdempotencyStore>();
        if (options.ConnectionMultiplexer is { } given)
        {
            return new RedisIdempotencyStore(given, options, logger);
        }

        if (options.Configuration is { } configuration)
        {
            return new RedisIdempotencyStore(configuration, options, logger);
        }

        var fromServices = services.GetService<IConnectionMultiplexer>()
            ?? throw new InvalidOperationException(
                "UseStackExchangeRedis found no Redis to connect to: set RedisIdempotencyStoreOptions.Configuration or .ConnectionMultiplexer, or register an IConnectionMultiplexer in the services.");
        return new RedisIdempotencyStore(fromServices, options, logger);
    }
}
