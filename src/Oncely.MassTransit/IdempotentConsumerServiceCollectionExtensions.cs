using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Oncely;
using Oncely.MassTransit;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the services behind <c>UseIdempotentConsumers</c>, without ASP.NET Core.</summary>
public static class IdempotentConsumerServiceCollectionExtensions
{
    /// <summary>
    /// Adds the idempotent-consumer engine with the in-memory store (replace it with <c>.UseSqlite(...)</c>,
    /// <c>.UsePostgreSql(...)</c> or <see cref="IdempotencyBuilderExtensions.UseStore{TStore}"/>; an application that
    /// also calls <c>AddIdempotency()</c> shares one store between HTTP and messages). Options are validated when the
    /// host starts; one background service (shared with <c>AddIdempotency()</c>, registered once) purges expired records
    /// and old audit entries of SQL stores, with the shared <see cref="IdempotencyMaintenanceOptions"/> (set them with
    /// <see cref="IdempotencyBuilderExtensions.ConfigureMaintenance"/>). Then call
    /// <c>cfg.UseIdempotentConsumers(context)</c> in the MassTransit bus configuration.
    /// </summary>
    /// <param name="services">The application's services.</param>
    /// <param name="configure">Changes the defaults (see <see cref="IdempotentConsumerOptions"/>).</param>
    /// <returns>A builder to choose the store with.</returns>
    public static IIdempotencyBuilder AddIdempotentConsumers(this IServiceCollection services, Action<IdempotentConsumerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var builder = services.AddIdempotencyTransport(configure, "Oncely.MassTransit");
        services.TryAddSingleton(sp => new IdempotentConsumerServices(
            sp.GetRequiredService<IIdempotencyStore>(),
            sp.GetRequiredService<IOptions<IdempotentConsumerOptions>>().Value,
            sp.GetRequiredService<KeyReuseAuditor>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILoggerFactory>(),
            sp.GetRequiredService<IdempotencyRedaction>(),
            sp.GetService<StoredAnswerProtection>()));
        return builder;
    }
}
