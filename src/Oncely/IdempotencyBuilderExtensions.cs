using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

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

    /// <summary>
    /// Encrypts what Oncely keeps of each operation before any store sees it: every stored answer's headers and body, and
    /// every key-reuse audit payload, with ASP.NET Core Data Protection (the application's <see cref="IDataProtectionProvider"/>,
    /// its key ring and its rotation). It works with every store and every completion path (plain, transactional,
    /// one-commit, EF Core staging) because the engine seals the answer before handing it to the store and opens it where
    /// a replay is built; the operator API shows audit payloads decrypted to operators. Answers stored before it was
    /// turned on still replay. An answer whose key was revoked or is gone is never replayed as garbage and never run
    /// again: HTTP answers <c>410</c> (decision-table row 6a), a message is acknowledged as consumed, and event 1050 is
    /// logged. See docs/data-protection.md.
    /// </summary>
    /// <param name="builder">The builder from <c>AddIdempotency()</c> or <c>AddIdempotentConsumers()</c>.</param>
    /// <returns>The same builder.</returns>
    /// <remarks>
    /// It calls <c>AddDataProtection()</c>, which keeps any configuration the application made or makes (for example
    /// <c>services.AddDataProtection().PersistKeysToFileSystem(...)</c>). Persist the key ring somewhere every instance
    /// reads and that outlives a restart, for as long as records live (<see cref="IdempotencyEngineOptions.Expiration"/>):
    /// without it, keys live in a per-user folder or in memory, and answers stored by another instance or before a
    /// restart are refused as unreadable.
    /// </remarks>
    public static IIdempotencyBuilder ProtectStoredAnswers(this IIdempotencyBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddDataProtection();
        builder.Services.TryAddSingleton(sp => new StoredAnswerProtection(sp.GetRequiredService<IDataProtectionProvider>()));
        return builder;
    }
}
