namespace Oncely;

/// <summary>
/// Validates idempotency keys as clients send them. Both the IETF form (a structured-field string, <c>"abc"</c>) and the
/// bare form (<c>abc</c>) are accepted and mean the same key.
/// </summary>
public static class IdempotencyKeyParser
{
    /// <summary>The default longest key, in characters: 255.</summary>
    public const int DefaultMaxLength = 255;

    /// <summary>
    /// Reads the key from the values of <c>Idempotency-Key</c> and its alias <c>X-Idempotency-Key</c>.
    /// </summary>
    /// <param name="primary">Every value of the <c>Idempotency-Key</c> header (empty when absent).</param>
    /// <param name="alias">Every value of the <c>X-Idempotency-Key</c> header (empty when absent).</param>
    /// <param name="maxLength">The longest key accepted, in characters.</param>
    /// <param name="key">The key, or <see langword="null"/> when none was sent or it is invalid.</param>
    /// <returns><see cref="IdempotencyKeyError.None"/> when the key is valid or absent (check <paramref name="key"/>), otherwise why it was refused.</returns>
    public static IdempotencyKeyError TryParse(IReadOnlyList<string?> primary, IReadOnlyList<string?> alias, int maxLength, out string? key)
    {
        ArgumentNullException.ThrowIfNull(primary);
        ArgumentNullException.ThrowIfNull(alias);
        key = null;
        var primaryError = ParseHeader(primary, maxLength, out var primaryKey);
        if (primaryError != IdempotencyKeyError.None)
        {
            return primaryError;
        }

        var aliasError = ParseHeader(alias, maxLength, out var aliasKey);
        if (aliasError != IdempotencyKeyError.None)
        {
            return aliasError;
        }

        if (primaryKey is not null && aliasKey is not null && !string.Equals(primaryKey, aliasKey, StringComparison.Ordinal))
        {
            return IdempotencyKeyError.ConflictingHeaders;
        }

        key = primaryKey ?? aliasKey;
        return IdempotencyKeyError.None;
    }

    /// <summary>Validates one key value (bare or quoted).</summary>
    /// <param name="value">The raw header value.</param>
    /// <param name="maxLength">The longest key accepted, in characters.</param>
    /// <param name="key">The key, or <see langword="null"/> when invalid.</param>
    /// <returns><see cref="IdempotencyKeyError.None"/> when valid, otherwise why it was refused.</returns>
    public static IdempotencyKeyError TryParse(string? value, int maxLength, out string? key)
    {
        key = null;
        if (string.IsNullOrEmpty(value))
        {
            return IdempotencyKeyError.Empty;
        }

        var span = value.AsSpan().Trim(' ');
        string candidate;
        if (span.Length > 0 && span[0] == '"')
        {
            var error = Unquote(span, out candidate);
            if (error != IdempotencyKeyError.None)
            {
                return error;
            }
        }
        else
        {
            if (span.Contains(','))
            {
                return IdempotencyKeyError.MultipleValues;
            }

            candidate = span.Length == value.Length ? value : span.ToString();
        }

        if (candidate.Length == 0)
        {
            return IdempotencyKeyError.Empty;
        }

        if (candidate.Length > maxLength)
        {
            return IdempotencyKeyError.TooLong;
        }

        foreach (var c in candidate)
        {
            if (c is < '!' or > '~')
            {
                return IdempotencyKeyError.InvalidCharacter;
            }
        }

        key = candidate;
        return IdempotencyKeyError.None;
    }

    private static IdempotencyKeyError ParseHeader(IReadOnlyList<string?> values, int maxLength, out string? key)
    {
        key = null;
        if (values.Count == 0)
        {
            return IdempotencyKeyError.None;
        }

        if (values.Count > 1)
        {
            return IdempotencyKeyError.MultipleValues;
        }

        return TryParse(values[0], maxLength, out key);
    }

    // RFC 8941 sf-string: DQUOTE *( unescaped / "\" ( DQUOTE / "\" ) ) DQUOTE, nothing after it.
    private static IdempotencyKeyError Unquote(ReadOnlySpan<char> span, out string key)
    {
        key = string.Empty;
        var builder = new System.Text.StringBuilder(span.Length);
        for (var i = 1; i < span.Length; i++)
        {
            var c = span[i];
            if (c == '\\')
            {
                if (i + 1 >= span.Length || span[i + 1] is not ('"' or '\\'))
                {
                    return IdempotencyKeyError.MalformedQuotedString;
                }

                builder.Append(span[++i]);
            }
            else if (c == '"')
            {
                var rest = span[(i + 1)..].TrimStart(' ');
                if (rest.Length == 0)
                {
                    key = builder.ToString();
                    return IdempotencyKeyError.None;
                }

                return rest[0] == ',' ? IdempotencyKeyError.MultipleValues : IdempotencyKeyError.MalformedQuotedString;
            }
            else
            {
                builder.Append(c);
            }
        }

        return IdempotencyKeyError.MalformedQuotedString;
    }
}
