namespace Oncely;

/// <summary>Why a key was refused (decision-table row 4), or <see cref="None"/>.</summary>
public enum IdempotencyKeyError
{
    /// <summary>The key is valid, or no key was sent.</summary>
    None = 0,

    /// <summary>The header was present but empty (or <c>""</c>).</summary>
    Empty,

    /// <summary>The key is longer than the limit (255 characters by default).</summary>
    TooLong,

    /// <summary>The key has a character outside visible ASCII (0x21 to 0x7E), such as a space, a control character or non-ASCII text.</summary>
    InvalidCharacter,

    /// <summary>The header was sent several times, or as a list of several values.</summary>
    MultipleValues,

    /// <summary><c>Idempotency-Key</c> and <c>X-Idempotency-Key</c> were both sent with different keys.</summary>
    ConflictingHeaders,

    /// <summary>A quoted (structured-field string) key is not well formed: an unterminated quote or a bad escape.</summary>
    MalformedQuotedString,
}
