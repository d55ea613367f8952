using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>
/// The key in a string member of the JSON body: a top-level member name (<c>id</c>) or an RFC 6901 JSON pointer
/// (<c>/data/id</c>, with <c>~1</c> for <c>/</c> and <c>~0</c> for <c>~</c> in names, and array indexes such as
/// <c>/items/0/id</c>). Names match ignoring case, as ASP.NET Core binds them. Set with <c>WithIdempotencyKeyFromJsonBody</c>
/// or <see cref="IdempotentAttribute.KeyJsonMember"/>.
/// </summary>
internal sealed class JsonMemberKeySource : IdempotencyKeySource
{
    private readonly string[] _path;

    /// <param name="member">A member name or a JSON pointer.</param>
    /// <exception cref="ArgumentException"><paramref name="member"/> is empty or not a well-formed JSON pointer.</exception>
    public JsonMemberKeySource(string member)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(member);
        if (member.StartsWith('/'))
        {
            _path = member[1..].Split('/');
            for (var i = 0; i < _path.Length; i++)
            {
                var segment = _path[i];
                if (segment.Length == 0)
                {
                    throw new ArgumentException($"The JSON pointer '{member}' has an empty segment; write it as '/data/id' (or give a top-level member name such as 'id').", nameof(member));
                }

                _path[i] = Unescape(segment, member);
            }
        }
        else
        {
            _path = [member];
        }

        var pointer = member.StartsWith('/') ? member : "/" + member.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);
        Description = $"the JSON member {pointer}";
    }

    /// <inheritdoc />
    public override string? Header => null;

    /// <inheritdoc />
    public override bool ReadsBody => true;

    /// <inheritdoc />
    public override string Description { get; }

    /// <inheritdoc />
    public override string MissingDetail(HttpRequest request)
        => $"{request.Method} {request.Path} performs an effectful operation once per key, and reads the key from {Description} of the request body: send a JSON body whose member there is a non-empty string that stays the same on every retry (or redelivery) of the operation.";

    /// <inheritdoc />
    public override IdempotencyKeyReading Read(HttpRequest request, ReadOnlyMemory<byte> body, int maxKeyLength)
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
                    return error == IdempotencyKeyError.None ? new(key, null) : new(null, DescribeInvalid(error, maxKeyLength));
                default:
                    return new(null, $"The key is read from {Description}, which holds a JSON {element.ValueKind.ToString().ToLowerInvariant()}; it must be a JSON string (for example \"evt_123\").");
            }
        }
    }

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
