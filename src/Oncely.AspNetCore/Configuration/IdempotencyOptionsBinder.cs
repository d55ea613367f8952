using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Primitives;

namespace Oncely.AspNetCore;

/// <summary>
/// Binds <see cref="IdempotencyOptions"/> from a configuration section, strictly, with messages that say what to change.
/// The section also holds the settings every transport shares (<see cref="IdempotencyMaintenanceOptions"/>:
/// <c>PurgeInterval</c>, <c>PurgeBatchSize</c>, <c>AuditRetention</c>, <c>AuditPayloadLimit</c>), beside the HTTP ones,
/// as they always were; those keys go to the shared options.
/// </summary>
internal static class IdempotencyOptionsBinder
{
    private static readonly HashSet<string> MaintenanceKeys = new(StringComparer.OrdinalIgnoreCase)
    {
        nameof(IdempotencyMaintenanceOptions.PurgeInterval),
        nameof(IdempotencyMaintenanceOptions.PurgeBatchSize),
        nameof(IdempotencyMaintenanceOptions.AuditRetention),
        nameof(IdempotencyMaintenanceOptions.AuditPayloadLimit),
    };

    /// <exception cref="InvalidOperationException">A key is not a setting, or a value does not convert; the message names it.</exception>
    public static void Bind(IConfiguration configuration, IdempotencyOptions options)
        => Strictly(configuration, () => Only(configuration, maintenance: false).Bind(options, binder => binder.ErrorOnUnknownConfiguration = true));

    /// <exception cref="InvalidOperationException">A value does not convert; the message names it.</exception>
    public static void Bind(IConfiguration configuration, IdempotencyMaintenanceOptions options)
        => Strictly(configuration, () => Only(configuration, maintenance: true).Bind(options, binder => binder.ErrorOnUnknownConfiguration = true));

    // The section's keys of one kind: the shared maintenance settings, or all the others (HTTP settings, policies and
    // any misspelling, which the strict binding then names).
    private static IConfiguration Only(IConfiguration configuration, bool maintenance)
        => new SomeKeys(configuration, key => MaintenanceKeys.Contains(key) == maintenance);

    // Each Bind call above names its options type, so the configuration binding source generator writes the binding
    // code at compile time (no reflection: Native AOT and trimming safe).
    private static void Strictly(IConfiguration configuration, Action bind)
    {
        try
        {
            bind();
        }
        catch (InvalidOperationException e)
        {
            var section = configuration is IConfigurationSection { Path: var path } ? $"'{path}'" : "the configuration root";
            throw new InvalidOperationException(
                $"Oncely: the idempotency options in {section} could not be read: {Describe(e)} " +
                "Every key must be an IdempotencyOptions setting (Lease, Expiration, MaxRequestBodySize, …) or a named policy under Policies " +
                "(Policies:{name}:Lease, …), spelled as in docs/configuration.md; durations are written \"hh:mm:ss\" (\"00:00:30\"), or \"d.hh:mm:ss\" for days (\"1.00:00:00\").",
                e);
        }
    }

    // The binder nests what went wrong (the unknown key, the value that did not convert) inside generic wrappers.
    private static string Describe(Exception exception)
    {
        var messages = new List<string>();
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (!current.Message.Contains("binding has failed", StringComparison.Ordinal) && !messages.Contains(current.Message))
            {
                messages.Add(current.Message.TrimEnd('.') + ".");
            }
        }

        return messages.Count == 0 ? exception.Message : string.Join(" ", messages);
    }

    // A view of a section that shows only some of its top-level keys; everything below them is the section's own, so
    // the binder's messages name the full paths (Oncely:Lease).
    private sealed class SomeKeys(IConfiguration section, Func<string, bool> keep) : IConfiguration
    {
        public string? this[string key]
        {
            get => section[key];
            set => section[key] = value;
        }

        public IEnumerable<IConfigurationSection> GetChildren() => section.GetChildren().Where(child => keep(child.Key));

        public IChangeToken GetReloadToken() => section.GetReloadToken();

        public IConfigurationSection GetSection(string key) => section.GetSection(key);
    }
}
