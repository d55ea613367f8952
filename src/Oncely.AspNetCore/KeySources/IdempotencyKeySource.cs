using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>
/// Where an idempotent endpoint reads its key, as OutputCaching's <c>VaryBy…Policy</c> types each own one rule. Each
/// source owns reading and validating the key (the value obeys the rules of <see cref="IdempotencyKeyParser"/>), saying
/// where it is in words, the answers for a missing or malformed key (rows 2 and 4) and where API documentation places it.
/// The sources: <see cref="DefaultHeaderKeySource"/> (<c>Idempotency-Key</c>, the default), <see cref="HeaderKeySource"/>
/// (another header, such as <c>webhook-id</c>) and <see cref="JsonMemberKeySource"/> (a string member of the JSON body).
/// A new source is a new subclass plus a convention in <see cref="IdempotencyEndpointConventionBuilderExtensions"/>.
/// </summary>
internal abstract class IdempotencyKeySource
{
    /// <summary>
    /// The request header that carries the key, which API documentation lists as a header parameter; <see langword="null"/>
    /// when the key is in the body (documentation then says where in the operation's description).
    /// </summary>
    public abstract string? Header { get; }

    /// <summary>A second header accepted for the key, documented as an alias; <see langword="null"/> for none.</summary>
    public virtual string? AliasHeader => null;

    /// <summary>Whether the key is in the body, which must then be read before the key.</summary>
    public virtual bool ReadsBody => false;

    /// <summary>Where the key is, in words: <c>the Idempotency-Key header</c>, <c>the JSON member /data/id</c>.</summary>
    public abstract string Description { get; }

    /// <summary>The row-2 answer's status, type and title for a request without a key.</summary>
    public virtual IdempotencyRefusal MissingRefusal => IdempotencyRefusals.Row02KeyMissingFromSource;

    /// <summary>The row-4 answer's status, type and title for a malformed key.</summary>
    public virtual IdempotencyRefusal InvalidRefusal => IdempotencyRefusals.Row04KeyInvalidFromSource;

    /// <summary>Reads and validates the key. <paramref name="body"/> is the buffered body, for a source that <see cref="ReadsBody"/>.</summary>
    public abstract IdempotencyKeyReading Read(HttpRequest request, ReadOnlyMemory<byte> body, int maxKeyLength);

    /// <summary>The detail of the row-2 answer (<c>400 idempotency-key-missing</c>) for a request that carries no key.</summary>
    public abstract string MissingDetail(HttpRequest request);

    /// <summary>
    /// The endpoint's key source: the last <c>WithIdempotencyKeyFrom…</c> convention, else the attribute's
    /// <see cref="IIdempotencyMetadata.KeyHeader"/> or <see cref="IIdempotencyMetadata.KeyJsonMember"/>, else the
    /// <c>Idempotency-Key</c> header (with its alias when <see cref="IdempotencyOptions.AcceptAliasHeader"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">The metadata names both a header and a JSON member.</exception>
    public static IdempotencyKeySource For(EndpointMetadataCollection endpointMetadata, IIdempotencyMetadata metadata, string? displayName, IdempotencyOptions options)
    {
        if (endpointMetadata.GetMetadata<IdempotencyKeySourceMetadata>() is { } convention)
        {
            return convention.Source;
        }

        if (metadata.KeyHeader is not null && metadata.KeyJsonMember is not null)
        {
            throw new InvalidOperationException(
                $"Oncely: endpoint '{displayName}' sets both KeyHeader and KeyJsonMember on its idempotency metadata; an endpoint reads its key from one place. Remove one of them.");
        }

        return metadata.KeyHeader is { } header ? new HeaderKeySource(header)
            : metadata.KeyJsonMember is { } member ? new JsonMemberKeySource(member)
            : DefaultHeaderKeySource.For(options);
    }

    /// <summary>Why a key found in <see cref="Description"/> is refused, for the sources other than <c>Idempotency-Key</c>.</summary>
    protected string DescribeInvalid(IdempotencyKeyError error, int maxKeyLength) => error switch
    {
        IdempotencyKeyError.Empty => $"The key in {Description} is empty. Send a non-empty key, for example a UUID.",
        IdempotencyKeyError.TooLong => $"The key in {Description} is too long: keys have at most {maxKeyLength} characters.",
        IdempotencyKeyError.InvalidCharacter => $"The key in {Description} contains a character outside visible ASCII (spaces, control characters and non-ASCII text are not allowed).",
        IdempotencyKeyError.MultipleValues => $"{Capitalized(Description)} carries several values (the header sent more than once, or a comma-separated list). Send exactly one key.",
        _ => $"The key in {Description} is not a well-formed structured-field string. Send the key bare (abc) or quoted (\"abc\").",
    };

    private static string Capitalized(string text) => string.Concat(char.ToUpperInvariant(text[0]).ToString(), text.AsSpan(1));
}
