using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Oncely;

/// <summary>
/// Computes a request's fingerprint: the SHA-256 of its method, path, sorted query, allow-listed headers, content type
/// and body, where a JSON body is first brought to its RFC 8785 (JCS) canonical form so that member order, whitespace
/// and number spelling (<c>100</c>, <c>100.0</c>, <c>1e2</c>) do not make two requests differ.
/// </summary>
/// <remarks>
/// A JSON body that is not I-JSON (duplicate member names, invalid UTF-8, lone surrogates, malformed JSON) or whose
/// numbers a double cannot hold exactly (<c>10000000000000000001</c>) is hashed as its raw bytes under a different tag,
/// so it never shares a fingerprint with a canonical body: two different amounts never fingerprint the same.
/// Every component is hashed with its own tag and a length prefix, so moving bytes from one component to the next
/// (<c>"ab" + "c"</c> against <c>"a" + "bc"</c>) changes the fingerprint. Strings are hashed as UTF-16 code units,
/// little-endian, so the result is the same on every platform.
/// </remarks>
public static class RequestFingerprint
{
    /// <summary>The length of a fingerprint: 64 lowercase hexadecimal characters (a SHA-256).</summary>
    public const int Length = 64;

    private const int NullLength = -1;

    /// <summary>Computes the fingerprint of a request.</summary>
    /// <param name="input">The request's parts. Its body is read, never kept.</param>
    /// <returns>The lowercase hexadecimal SHA-256 of the canonical request, <see cref="Length"/> characters long.</returns>
    /// <exception cref="ArgumentException"><paramref name="input"/> has no method or path (a default value).</exception>
    public static string Compute(in FingerprintInput input)
    {
        if (string.IsNullOrEmpty(input.Method) || input.Path is null)
        {
            throw new ArgumentException("The fingerprint input needs a method and a path; create it with new FingerprintInput(method, path).", nameof(input));
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        AppendString(hash, "oncely.fingerprint", "v1");
        AppendString(hash, "method", input.Method.ToUpperInvariant());
        AppendString(hash, "path", input.Path);
        AppendPairs(hash, "query", input.Query, lowerCaseNames: false);
        AppendPairs(hash, "header", input.Headers, lowerCaseNames: true);

        var body = input.Body.Span;
        PooledBufferWriter? canonical = null;
        try
        {
            if (!body.IsEmpty && IsJsonContentType(input.ContentType))
            {
                canonical = new PooledBufferWriter(body.Length);
                if (!JsonCanonicalizer.TryCanonicalize(body, canonical))
                {
                    canonical.Dispose();
                    canonical = null;
                }
            }

            AppendString(hash, "content-type", NormalizeContentType(input.ContentType, keepParameters: canonical is null));
            if (canonical is not null)
            {
                AppendBytes(hash, "body.jcs", canonical.WrittenSpan);
            }
            else
            {
                AppendBytes(hash, "body.raw", body);
            }
        }
        finally
        {
            canonical?.Dispose();
        }

        Span<byte> digest = stackalloc byte[32];
        hash.GetHashAndReset(digest);
        return Convert.ToHexStringLower(digest);
    }

    /// <summary>
    /// Tells whether a <c>Content-Type</c> names JSON: <c>application/json</c> or any <c>type/subtype+json</c>
    /// (such as <c>application/problem+json</c>), case-insensitively, ignoring parameters such as <c>; charset=utf-8</c>.
    /// </summary>
    /// <param name="contentType">The header value, or <see langword="null"/>.</param>
    /// <returns><see langword="true"/> for a JSON media type; <see langword="false"/> otherwise, including for <see langword="null"/>.</returns>
    public static bool IsJsonContentType(string? contentType)
    {
        if (contentType is null)
        {
            return false;
        }

        var mediaType = MediaType(contentType);
        if (mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        var slash = mediaType.IndexOf('/');
        if (slash <= 0)
        {
            return false;
        }

        var subtype = mediaType[(slash + 1)..];
        return subtype.Length > "+json".Length
            && subtype.EndsWith("+json", StringComparison.OrdinalIgnoreCase)
            && subtype.IndexOfAny('/', ' ', '\t') < 0
            && mediaType[..slash].IndexOfAny(' ', '\t') < 0;
    }

    private static ReadOnlySpan<char> MediaType(string contentType)
    {
        var span = contentType.AsSpan();
        var semicolon = span.IndexOf(';');
        return (semicolon < 0 ? span : span[..semicolon]).Trim(" \t");
    }

    // The media type lower-cased; with its parameters (as sent, trimmed) when the body is hashed raw, since a charset or
    // a boundary changes what raw bytes mean; without them for canonical JSON, which is UTF-8 whatever they say.
    private static string? NormalizeContentType(string? contentType, bool keepParameters)
    {
        if (contentType is null)
        {
            return null;
        }

        var mediaType = MediaType(contentType).ToString().ToLowerInvariant();
        var semicolon = contentType.IndexOf(';', StringComparison.Ordinal);
        if (!keepParameters || semicolon < 0)
        {
            return mediaType;
        }

        return string.Concat(mediaType, contentType.AsSpan(semicolon).TrimEnd(" \t"));
    }

    private static void AppendPairs(IncrementalHash hash, string tag, IEnumerable<KeyValuePair<string, string?>>? pairs, bool lowerCaseNames)
    {
        var list = new List<KeyValuePair<string, string?>>();
        if (pairs is not null)
        {
            foreach (var pair in pairs)
            {
                if (pair.Key is null)
                {
                    throw new ArgumentException($"A {tag} name is null.", nameof(pairs));
                }

                list.Add(lowerCaseNames ? new(pair.Key.ToLowerInvariant(), pair.Value) : pair);
            }
        }

        list.Sort(static (x, y) =>
        {
            var byName = string.CompareOrdinal(x.Key, y.Key);
            return byName != 0 ? byName : string.CompareOrdinal(x.Value, y.Value);
        });

        AppendLength(hash, tag, list.Count);
        foreach (var pair in list)
        {
            AppendString(hash, tag + ".name", pair.Key);
            AppendString(hash, tag + ".value", pair.Value);
        }
    }

    private static void AppendLength(IncrementalHash hash, string tag, int count)
    {
        AppendTag(hash, tag);
        Span<byte> prefix = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(prefix, count);
        hash.AppendData(prefix);
    }

    private static void AppendString(IncrementalHash hash, string tag, string? value)
    {
        if (value is null)
        {
            AppendLength(hash, tag, NullLength);
            return;
        }

        if (BitConverter.IsLittleEndian)
        {
            AppendBytes(hash, tag, MemoryMarshal.AsBytes(value.AsSpan()));
            return;
        }

        var bytes = ArrayPool<byte>.Shared.Rent(value.Length * 2);
        try
        {
            for (var i = 0; i < value.Length; i++)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(i * 2), value[i]);
            }

            AppendBytes(hash, tag, bytes.AsSpan(0, value.Length * 2));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    private static void AppendBytes(IncrementalHash hash, string tag, ReadOnlySpan<byte> value)
    {
        AppendLength(hash, tag, value.Length);
        hash.AppendData(value);
    }

    private static void AppendTag(IncrementalHash hash, string tag)
    {
        // Tags are short ASCII constants: a length byte, then the characters.
        Span<byte> bytes = stackalloc byte[tag.Length + 1];
        bytes[0] = (byte)tag.Length;
        for (var i = 0; i < tag.Length; i++)
        {
            bytes[i + 1] = (byte)tag[i];
        }

        hash.AppendData(bytes);
    }
}
