using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Compliance.Redaction;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Oncely;

/// <summary>
/// The services every transport needs, registered by each transport's <c>Add…</c> method and present once however many
/// of them an application calls: the clock, the store (in-memory until one is chosen), the shared
/// <see cref="IdempotencyMaintenanceOptions"/> (validated at start), the one <see cref="IdempotencyRedaction"/> (the
/// application's <c>IRedactorProvider</c> when it registered one), the one <see cref="KeyReuseAuditor"/> and the one
/// hosted <see cref="IdempotencyStoreMaintenance"/>.
/// </summary>
internal static class IdempotencyCoreServices
{
    /// <summary>
    /// Registers a transport's options (configured by <paramref name="configure"/>, validated when the host starts) and
    /// what is missing of the shared services; the transport's <c>MaxKeyLength</c> is checked against the store at start.
    /// </summary>
    /// <typeparam name="TOptions">The transport's options.</typeparam>
    /// <param name="services">The application's services.</param>
    /// <param name="configure">Changes the transport's defaults; may be <see langword="null"/>.</param>
    /// <param name="owner">The transport's package, named in start-up refusals (<c>Oncely</c>, <c>Oncely.MassTransit</c>).</param>
    /// <returns>The builder the transport's <c>Add…</c> method returns.</returns>
    public static IIdempotencyBuilder AddIdempotencyTransport<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicParameterlessConstructor)] TOptions>(this IServiceCollection services, Action<TOptions>? configure, string owner)
        where TOptions : IdempotencyEngineOptions
    {
        var options = services.AddOptions<TOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TOptions>, EngineOptionsValidator<TOptions>>());
        services.AddOptions<IdempotencyMaintenanceOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<IdempotencyMaintenanceOptions>, IdempotencyMaintenanceOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IIdempotencyStore>(sp => new InMemoryIdempotencyStore(sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton(sp => new IdempotencyRedaction(sp.GetService<IRedactorProvider>()));
        services.TryAddSingleton(sp => new KeyReuseAuditor(
            sp.GetRequiredService<IOptions<IdempotencyMaintenanceOptions>>().Value,
            sp.GetService<ILogger<KeyReuseAuditor>>() ?? NullLogger<KeyReuseAuditor>.Instance,
            sp.GetRequiredService<IdempotencyRedaction>()));
        services.TryAddSingleton(sp => new IdempotencyEraser(
            sp.GetRequiredService<IIdempotencyStore>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILogger<IdempotencyEraser>>())
        {
            Redaction = sp.GetRequiredService<IdempotencyRedaction>(),
        });
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, IdempotencyStoreMaintenance>());
        if (!services.Any(d => d.ImplementationInstance is IdempotencyKeyLengthRequirement r && r.Owner == owner))
        {
            services.AddSingleton(new IdempotencyKeyLengthRequirement(owner, sp => sp.GetRequiredService<IOptions<TOptions>>().Value.MaxKeyLength));
        }

        return new Builder(services);
    }

    private sealed class Builder(IServiceCollection services) : IIdempotencyBuilder
    {
        public IServiceCollection Services { get; } = services;
    }

    // Every transport's options validate themselves (IdempotencyEngineOptions.Validate and its overrides).
    private sealed class EngineOptionsValidator<TOptions> : IValidateOptions<TOptions>
        where TOptions : IdempotencyEngineOptions
    {
        public ValidateOptionsResult Validate(string? name, TOptions options)
        {
            var problems = options.Validate();
            return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
        }
    }
}
