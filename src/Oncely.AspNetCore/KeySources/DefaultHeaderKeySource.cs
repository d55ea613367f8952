using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>
/// The default key source: the <c>Idempotency-Key</c> header, and its alias <c>X-Idempotency-Key</c> when
/// <see cref="IdempotencyOptions.AcceptAliasHeader"/> is on (the two must then agree).
/// </summary>
internal sealed class DefaultHeaderKeySource : IdempotencyKeySource
{
    private static readonly string[] NoValues = [];
    private static readonly DefaultHeaderKeySource WithAlias = new(acceptAlias: true);
    private static readonly DefaultHeaderKeySource WithoutAlias = new(acceptAlias: false);

    private readonly bool _acceptAlias;

    private DefaultHeaderKeySource(bool acceptAlias) => _acceptAlias = acceptAlias;

    /// <inheritdoc />
    public override string Header => IdempotencyOptions.HeaderName;

    /// <inheritdoc />
    public override string? AliasHeader => _acceptAlias ? IdempotencyOptions.AliasHeaderName : null;

    /// <inheritdoc />
    public override string Description => $"the {IdempotencyOptions.HeaderName} header";

    /// <inheritdoc />
    public override IdempotencyRefusal MissingRefusal => IdempotencyRefusals.Row02KeyMissing;

    /// <inheritdoc />
    public override IdempotencyRefusal InvalidRefusal => IdempotencyRefusals.Row04KeyInvalid;

    /// <summary>The source for the options in force (one shared instance per alias setting).</summary>
    public static DefaultHeaderKeySource For(IdempotencyOptions options) => options.AcceptAliasHeader ? WithAlias : WithoutAlias;

    /// <inheritdoc />
    public override IdempotencyKeyReading Read(HttpRequest request, ReadOnlyMemory<byte> body, int maxKeyLength)
    {
        var primary = request.Headers[IdempotencyOptions.HeaderName];
        var alias = _acceptAlias ? request.Headers[IdempotencyOptions.AliasHeaderName] : default;
        string? key;
        // The usual request, one key header with one value, is parsed without boxing the header values into lists; the
        // list form gives the same answer for it.
        var error = primary.Count == 1 && alias.Count == 0
            ? IdempotencyKeyParser.TryParse(primary[0], maxKeyLength, out key)
            : IdempotencyKeyParser.TryParse(primary, alias.Count == 0 ? NoValues : alias, maxKeyLength, out key);
        return error == IdempotencyKeyError.None ? new(key, null) : new(null, Describe(error, maxKeyLength));
    }

    /// <inheritdoc />
    public override string MissingDetail(HttpRequest request)
        => $"{request.Method} {request.Path} performs an effectful operation: send an Idempotency-Key header (for example a UUID) and reuse the same key on every retry of this operation.";

    private static string Describe(IdempotencyKeyError error, int maxKeyLength) => error switch
    {
        IdempotencyKeyError.Empty => "The Idempotency-Key header is empty. Send a non-empty key, for example a UUID.",
        IdempotencyKeyError.TooLong => $"The Idempotency-Key is too long. Keys may have at most {maxKeyLength} characters; a UUID is recommended.",
        IdempotencyKeyError.InvalidCharacter => "The Idempotency-Key contains a character outside visible ASCII (spaces, control characters and non-ASCII text are not allowed).",
        IdempotencyKeyError.MultipleValues => "The Idempotency-Key header was sent with several values. Send exactly one key.",
        IdempotencyKeyError.ConflictingHeaders => "Idempotency-Key and X-Idempotency-Key carry different keys. Send one header, or the same key in both.",
        _ => "The Idempotency-Key is not a well-formed structured-field string. Send the key bare (abc) or quoted (\"abc\").",
    };
}
