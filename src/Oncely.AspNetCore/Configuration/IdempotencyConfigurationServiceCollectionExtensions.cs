using Microsoft.Extensions.Configuration;
using Oncely;
using Oncely.AspNetCore;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Oncely's services with options bound from configuration.</summary>
public static class IdempotencyConfigurationServiceCollectionExtensions
{
    /// <summary>
    /// Adds the idempotency engine (as <see cref="IdempotencyServiceCollectionExtensions.AddIdempotency(IServiceCollection, Action{IdempotencyOptions}?)"/>)
    /// with every <see cref="IdempotencyOptions"/> setting, named policies included (<c>Policies:payments:Lease</c>), and
    /// the shared <see cref="IdempotencyMaintenanceOptions"/> (<c>PurgeInterval</c>, <c>AuditRetention</c>, …) bound from
    /// <paramref name="configuration"/>, usually <c>builder.Configuration.GetSection("Oncely")</c>.
    /// <paramref name="configure"/> runs after the binding, so code has the last word. Binding is strict: a key that is
    /// not a setting (a misspelling) or a value that does not convert (durations are <c>"hh:mm:ss"</c>, days
    /// <c>"d.hh:mm:ss"</c>) stops the host at start-up with a message naming the key, as does any value the options'
    /// validation refuses.
    /// </summary>
    /// <param name="services">The application's services.</param>
    /// <param name="configuration">The section holding the options (its keys are the option names).</param>
    /// <param name="configure">Changes the bound options in code; default none.</param>
    /// <returns>A builder to choose the store with.</returns>
    public static IIdempotencyBuilder AddIdempotency(this IServiceCollection services, IConfiguration configuration, Action<IdempotencyOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<IdempotencyOptions>().Configure(options => IdempotencyOptionsBinder.Bind(configuration, options));
        services.AddOptions<IdempotencyMaintenanceOptions>().Configure(options => IdempotencyOptionsBinder.Bind(configuration, options));
        return services.AddIdempotency(configure);
    }
}
