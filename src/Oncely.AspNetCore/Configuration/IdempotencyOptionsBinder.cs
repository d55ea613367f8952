using Microsoft.Extensions.Configuration;

namespace Oncely.AspNetCore;

/// <summary>Binds <see cref="IdempotencyOptions"/> from a configuration section, strictly, with messages that say what to change.</summary>
internal static class IdempotencyOptionsBinder
{
    /// <exception cref="InvalidOperationException">A key is not a setting, or a value does not convert; the message names it.</exception>
    public static void Bind(IConfiguration configuration, IdempotencyOptions options)
    {
        try
        {
            configuration.Bind(options, binder => binder.ErrorOnUnknownConfiguration = true);
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
}
