using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Oncely;

/// <summary>
/// The services every transport needs, registered by each transport's <c>Add…</c> method and present once however many
/// of them an application calls: the clock, the store (in-memory until one is chosen), the shared
/// <see cref="IdempotencyMaintenanceOptions"/> (validated at start), the one <see cref="KeyReuseAuditor"/> and the one
/// hosted <see cref="IdempotencyStoreMaintenance"/>.
/// </summary>
internal static class IdempotencyCoreServices
{
    /// <summary>Adds what is missing of the shared services, and the transport's longest key for the start-up limits check.</summary>
    /// <param name="services">The application's services.</param>
    /// <param name="keyLength">The transport's longest accepted key, checked against the store when the host starts.</param>
    public static void AddIdempotencyCore(this IServiceCollection services, IdempotencyKeyLengthRequirement keyLength)
    {
        services.AddOptions<IdempotencyMaintenanceOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<IdempotencyMaintenanceOptions>, IdempotencyMaintenanceOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IIdempotencyStore>(sp => new InMemoryIdempotencyStore(sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton(sp => new KeyReuseAuditor(
            sp.GetRequiredService<IOptions<IdempotencyMaintenanceOptions>>().Value,
            sp.GetService<ILogger<KeyReuseAuditor>>() ?? Microsoft.Extensions.Logging.Abstractions.NullLogger<KeyReuseAuditor>.Instance));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, IdempotencyStoreMaintenance>());
        if (!services.Any(d => d.ServiceType == typeof(IdempotencyKeyLengthRequirement) && d.ImplementationInstance is IdempotencyKeyLengthRequirement r && r.Owner == keyLength.Owner))
        {
            services.AddSingleton(keyLength);
        }
    }
}
