using Microsoft.Extensions.DependencyInjection;

namespace Oncely;

/// <summary>
/// What every transport's builder (<c>AddIdempotency()</c>, <c>AddIdempotentConsumers()</c>) can do: choose the store
/// (store packages extend it with <c>.UsePostgreSql(...)</c> and the like) and set the shared upkeep.
/// </summary>
public static class IdempotencyBuilderExtensions
{
    /// <summary>
    /// Changes the settings every transport shares (<see cref="IdempotencyMaintenanceOptions"/>: the key-reuse audit's
    /// redactor, cap and retention, the purge interval and batch size). One set per application: calling it from the
    /// HTTP builder and from the consumer builder changes the same options, in call order.
    /// </summary>
    /// <param name="builder">The builder from <c>AddIdempotency()</c> or <c>AddIdempotentConsumers()</c>.</param>
    /// <param name="configure">Changes the defaults.</param>
    /// <returns>The same builder.</returns>
    public static IIdempotencyBuilder ConfigureMaintenance(this IIdempotencyBuilder builder, Action<IdempotencyMaintenanceOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.Configure(configure);
        return builder;
    }

    /// <summary>
    /// Makes <paramref name="factory"/>'s store the one every idempotent operation uses, replacing the default
    /// in-memory store (or any store chosen before).
    /// </summary>
    /// <typeparam name="TStore">The store type.</typeparam>
    /// <param name="builder">The builder from <c>AddIdempotency()</c>.</param>
    /// <param name="factory">Creates the store once, from the application's services.</param>
    /// <returns>The same builder.</returns>
    public static IIdempotencyBuilder UseStore<TStore>(this IIdempotencyBuilder builder, Func<IServiceProvider, TStore> factory)
        where TStore : class, IIdempotencyStore
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(factory);
        for (var i = builder.Services.Count - 1; i >= 0; i--)
        {
            if (builder.Services[i].ServiceType == typeof(IIdempotencyStore))
            {
                builder.Services.RemoveAt(i);
            }
        }

        if (typeof(TStore) == typeof(IIdempotencyStore))
        {
            // A forwarding registration would resolve itself forever.
            builder.Services.AddSingleton<IIdempotencyStore>(factory);
        }
        else
        {
            builder.Services.AddSingleton<TStore>(factory);
            builder.Services.AddSingleton<IIdempotencyStore>(sp => sp.GetRequiredService<TStore>());
        }
        return builder;
    }
}
