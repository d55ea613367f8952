using Microsoft.Extensions.Options;

namespace Oncely.Http;

/// <summary>Checks <see cref="IdempotencyKeyHandlerOptions"/> when a client is created, with messages that say what to change.</summary>
internal sealed class IdempotencyKeyHandlerOptionsValidator : IValidateOptions<IdempotencyKeyHandlerOptions>
{
    internal static readonly TimeSpan LongestMaxRetryAfter = TimeSpan.FromMinutes(5);

    public ValidateOptionsResult Validate(string? name, IdempotencyKeyHandlerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        var client = string.IsNullOrEmpty(name) ? "the default HttpClient" : $"HttpClient '{name}'";

        if (string.IsNullOrEmpty(options.HeaderName) || !IsToken(options.HeaderName))
        {
            failures.Add($"{nameof(IdempotencyKeyHandlerOptions.HeaderName)} of {client} must be a valid HTTP header name such as 'Idempotency-Key'; it was '{options.HeaderName}'.");
        }

        if (options.Methods.Count == 0)
        {
            failures.Add($"{nameof(IdempotencyKeyHandlerOptions.Methods)} of {client} is empty, so the handler would never add a key; add POST and/or PATCH, or do not call AddIdempotencyKeys.");
        }

        if (options.KeyFactory is null)
        {
            failures.Add($"{nameof(IdempotencyKeyHandlerOptions.KeyFactory)} of {client} must not be null; leave the default (a random UUID) or set a function that returns a fresh key.");
        }

        if (options.MaxInProgressRetries < 0)
        {
            failures.Add($"{nameof(IdempotencyKeyHandlerOptions.MaxInProgressRetries)} of {client} must be 0 (off) or more; it was {options.MaxInProgressRetries}.");
        }

        if (options.MaxRetryAfter < TimeSpan.Zero || options.MaxRetryAfter > LongestMaxRetryAfter)
        {
            failures.Add($"{nameof(IdempotencyKeyHandlerOptions.MaxRetryAfter)} of {client} must be between 00:00:00 and {LongestMaxRetryAfter}; it was {options.MaxRetryAfter}.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    // RFC 9110 token characters.
    private static bool IsToken(string value)
    {
        foreach (var c in value)
        {
            var ok = char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c, StringComparison.Ordinal);
            if (!ok)
            {
                return false;
            }
        }

        return true;
    }
}
