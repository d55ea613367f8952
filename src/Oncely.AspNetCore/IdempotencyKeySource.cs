using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>How reading a key from its source ended.</summary>
/// <param name="Key">The validated key, or <see langword="null"/> when none was sent or it was refused.</param>
/// <param name="Problem">
/// Why the key was refused (row 4, <c>idempotency-key-invalid</c>), in words for the sender's developer; <see langword="null"/>
/// when the key is valid or absent.
/// </param>
internal readonly record struct IdempotencyKeyReading(string? Key, string? Problem);

/// <summary>
/// Where an endpoint reads its key when it is not the <c>Idempotency-Key</c> header: another request header (a webhook
/// provider's <c>webhook-id</c>) or a string member of the JSON body (an event's <c>id</c>, or <c>/data/id</c>). The value
/// found obeys the same rules as an <c>Idempotency-Key</c> (<see cref="IdempotencyKeyParser"/>). Set with
/// <see cref="IdempotencyKeySourceEndpointConventionBuilderExtensions"/> or <see cref="IdempotentAttribute.KeyHeader"/> /
/// <see cref="IdempotentAttribute.KeyJsonMember"/>.
/// </summary>
internal sealed class IdempotencyKeySource
{
    private static readonly string[] NoValues = [];

    private readonly string? _header;
    private readonly string[] _path;

    private IdempotencyKeySource(string? header, string[] path, string description)
    {
        _header = header;
        _path = path;
        Description = description;
    }

    /// <summary>The header the key is read from, or <see langword="null"/> when it is in the body.</summary>
    public string? Header => _header;

    /// <summary>Whether the key is in the body, which must then be read before the key.</summary>
    public bool ReadsBody => _header is null;

    /// <summary>Where the key is, in words: <c>the webhook-id header</c>, <c>the JSON member /data/id</c>.</summary>
    public string Description { get; }

    public static IdempotencyKeySource FromHeader(string header)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(header);
        return new IdempotencyKeySource(header.Trim(), [], $"the {header.Trim()} header");
    }

    /// <summary>
    /// A member of the JSON body: a top-level member name (<c>id</c>) or an RFC 6901 JSON pointer (<c>/data/id</c>, with
    /// <c>~1</c> for <c>/</c> and <c>~0</c> for <c>~</c> in names, and array indexes such as <c>/items/0/id</c>).
    /// </summary>
    public static IdempotencyKeySource FromJsonMember(string member)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(member);
        string[] path;
        if (member.StartsWith('/'))
        {
            path = member[1..].Split('/');
            for (var i = 0; i < path.Length; i++)
            {
                var segment = path[i];
                if (segment.Length == 0)
                {
                    throw new ArgumentException($"The JSON pointer '{member}' has an empty segment; write it as '/data/id' (or give a top-level member name such as 'id').", nameof(member));
                }

                path[i] = Unescape(segment, member);
            }
        }
        else
        {
            path = [member];
        }

        var pointer = member.StartsWith('/') ? member : "/" + member.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);
        return new IdempotencyKeySource(null, path, $"the JSON member {pointer}");
    }

    /// <summary>
    /// The endpoint's key source: the last <c>WithIdempotencyKeyFrom…</c> convention, else the attribute's
    /// <see cref="IIdempotencyMetadata.KeyHeader"/> or <see cref="IIdempotencyMetadata.KeyJsonMember"/>, else
    /// <see langword="null"/> (the <c>Idempotency-Key</c> header).
    /// </summary>
    public static IdempotencyKeySource? For(Endpoint endpoint, IIdempotencyMetadata metadata)
        => For(endpoint.Metadata, metadata, endpoint.DisplayName);

    /// <summary>The key source named by an endpoint's metadata (see the other overload).</summary>
    public static IdempotencyKeySource? For(EndpointMetadataCollection endpointMetadata, IIdempotencyMetadata metadata, string? displayName)
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

        return metadata.KeyHeader is { } header ? FromHeader(header)
            : metadata.KeyJsonMember is { } member ? FromJsonMember(member)
            : null;
    }

    /// <summary>Reads and validates the key. <paramref name="body"/> is the buffered body, for a JSON source.</summary>
    public IdempotencyKeyReading Read(HttpRequest request, ReadOnlyMemory<byte> body, int maxKeyLength)
    {
        if (_header is not null)
        {
            var error = IdempotencyKeyParser.TryParse(request.Headers[_header], NoValues, maxKeyLength, out var key);
            return error == IdempotencyKeyError.None ? new(key, null) : new(null, Describe(error, maxKeyLength));
        }

        return ReadJson(body, maxKeyLength);
    }

    /// <summary>The detail of the <c>400 idempotency-key-missing</c> answer for a request that carries no key.</summary>
    public string MissingDetail(HttpRequest request) => _header is not null
        ? $"{request.Method} {request.Path} performs an effectful operation once per key, and reads the key from {Description}: send it, with one value that stays the same on every retry (or redelivery) of the operation."
        : $"{request.Method} {request.Path} performs an effectful operation once per key, and reads the key from {Description} of the request body: send a JSON body whose member there is a non-empty string that stays the same on every retry (or redelivery) of the operation.";

    private IdempotencyKeyReading ReadJson(ReadOnlyMemory<byte> body, int maxKeyLength)
    {
        if (body.IsEmpty)
        {
            return default;
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body);
        }
        catch (JsonException)
        {
            return new(null, $"The key is read from {Description}, but the request body is not valid JSON (in UTF-8), so no key could be read. Send a JSON body.");
        }

        using (document)
        {
            var element = document.RootElement;
            foreach (var segment in _path)
            {
                switch (element.ValueKind)
                {
                    case JsonValueKind.Object:
                        var matches = 0;
                        foreach (var member in element.EnumerateObject())
                        {
                            // ASP.NET Core binds JSON members ignoring case, so two members that differ only in case could
                            // give the handler one value and the key another: such a body is refused.
                            if (string.Equals(member.Name, segment, StringComparison.OrdinalIgnoreCase))
                            {
                                element = member.Value;
                                matches++;
                            }
                        }

                        if (matches == 0)
                        {
                            return default;
                        }

                        if (matches > 1)
                        {
                            return new(null, $"The request body has {matches} members that match '{segment}' on the way to {Description} (names are compared ignoring case, as ASP.NET Core binds them). Send each member once.");
                        }

                        break;
                    case JsonValueKind.Array when IsIndex(segment, out var index):
                        if (index >= element.GetArrayLength())
                        {
                            return default;
                        }

                        element = element[index];
                        break;
                    default:
                        return default;
                }
            }

            switch (element.ValueKind)
            {
                case JsonValueKind.Null:
                    return default;
                case JsonValueKind.String:
                    var error = IdempotencyKeyParser.TryParse(element.GetString(), maxKeyLength, out var key);
                    return error == IdempotencyKeyError.None ? new(key, null) : new(null, Describe(error, maxKeyLength));
                default:
                    return new(null, $"The key is read from {Description}, which holds a JSON {element.ValueKind.ToString().ToLowerInvariant()}; it must be a JSON string (for example \"evt_123\").");
            }
        }
    }

    private string Describe(IdempotencyKeyError error, int maxKeyLength) => error switch
    {
        IdempotencyKeyError.Empty => $"The key in {Description} is empty. Send a non-empty key, for example a UUID.",
        IdempotencyKeyError.TooLong => $"The key in {Description} is too long: keys have at most {maxKeyLength} characters.",
        IdempotencyKeyError.InvalidCharacter => $"The key in {Description} contains a character outside visible ASCII (spaces, control characters and non-ASCII text are not allowed).",
        IdempotencyKeyError.MultipleValues => $"{Capitalized(Description)} carries several values (the header sent more than once, or a comma-separated list). Send exactly one key.",
        _ => $"The key in {Description} is not a well-formed structured-field string. Send the key bare (abc) or quoted (\"abc\").",
    };

    private static string Capitalized(string text) => string.Concat(char.ToUpperInvariant(text[0]).ToString(), text.AsSpan(1));

    private static bool IsIndex(string segment, out int index)
    {
        // RFC 6901: an array index is 0 or digits without a leading zero.
        index = 0;
        if (segment.Length == 0 || (segment.Length > 1 && segment[0] == '0') || !segment.All(char.IsAsciiDigit))
        {
            return false;
        }

        return int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out index);
    }

    private static string Unescape(string segment, string pointer)
    {
        if (!segment.Contains('~'))
        {
            return segment;
        }

        var text = new StringBuilder(segment.Length);
        for (var i = 0; i < segment.Length; i++)
        {
            if (segment[i] != '~')
            {
                text.Append(segment[i]);
                continue;
            }

            text.Append(i + 1 < segment.Length ? segment[++i] switch
            {
                '0' => '~',
                '1' => '/',
                _ => throw new ArgumentException($"The JSON pointer '{pointer}' has a '~' not followed by 0 or 1; write '~0' for '~' and '~1' for '/'.", nameof(pointer)),
            } : throw new ArgumentException($"The JSON pointer '{pointer}' ends with a lone '~'; write '~0' for '~'.", nameof(pointer)));
        }

        return text.ToString();
    }
}
