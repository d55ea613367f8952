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
    public static string Compute(in FingerprintInput input) => Compute(input, cache: null, scope: null);

    /// <summary>
    /// Computes the fingerprint, answering a byte-identical repeat of a JSON request from <paramref name="cache"/>
    /// without canonicalising it again. The cache is keyed by the SHA-256 of the raw request and
    /// <paramref name="scope"/>, so one caller's requests never hit (or time) another's entries.
    /// </summary>
    internal static string Compute(in FingerprintInput input, FingerprintCache? cache, string? scope)
    {
        if (string.IsNullOrEmpty(input.Method) || input.Path is null)
        {
            throw new ArgumentException("The fingerprint input needs a method and a path; create it with new FingerprintInput(method, path).", nameof(input));
        }

        // The whole tagged input is laid out in one pooled buffer and hashed in one call: the same bytes, in the same
        // order, as feeding each part to an incremental hash, without a native hash context or a call per part.
        var body = input.Body.Span;
        using var buffer = new PooledBufferWriter(512 + (input.Path.Length * 2) + body.Length + (body.Length / 4));
        AppendString(buffer, "oncely.fingerprint", "v1");
        AppendString(buffer, "method", input.Method.ToUpperInvariant());
        AppendString(buffer, "path", input.Path);
        AppendPairs(buffer, "query", input.Query, lowerCaseNames: false);
        AppendPairs(buffer, "header", input.Headers, lowerCaseNames: true);

        var beforeBody = buffer.WrittenCount;
        if (body.IsEmpty || !IsJsonContentType(input.ContentType))
        {
            // Hashed as raw bytes: nothing to canonicalise, nothing worth caching.
            AppendContentType(buffer, input.ContentType, keepParameters: true);
            AppendBytes(buffer, "body.raw", body);
            return Digest(buffer.WrittenSpan);
        }

        var cacheKey = default(FingerprintCache.Key);
        if (cache is not null)
        {
            AppendContentType(buffer, input.ContentType, keepParameters: true);
            AppendBytes(buffer, "body.raw", body);
            AppendString(buffer, "cache.scope", scope);
            cacheKey = FingerprintCache.Key.Of(buffer.WrittenSpan);
            if (cache.TryGet(cacheKey, out var cached))
            {
                return cached;
            }

            buffer.Truncate(beforeBody);
        }

        // Canonical JSON is written in place, behind its tag and a length patched in afterwards; the canonicaliser
        // writes nothing when it refuses a document, and the raw form then replaces this attempt.
        AppendContentType(buffer, input.ContentType, keepParameters: false);
        AppendTag(buffer, "body.jcs", null);
        var lengthAt = buffer.WrittenCount;
        buffer.Advance(WriteInt32(buffer, 0));
        string fingerprint;
        if (JsonCanonicalizer.TryCanonicalize(body, buffer))
        {
            BinaryPrimitives.WriteInt32LittleEndian(buffer.WrittenSpanForPatch(lengthAt, 4), buffer.WrittenCount - lengthAt - 4);
            fingerprint = Digest(buffer.WrittenSpan);
        }
        else
        {
            buffer.Truncate(beforeBody);
            AppendContentType(buffer, input.ContentType, keepParameters: true);
            AppendBytes(buffer, "body.raw", body);
            fingerprint = Digest(buffer.WrittenSpan);
        }

        cache?.Add(cacheKey, fingerprint);
        return fingerprint;
    }

    private static string Digest(ReadOnlySpan<byte> data)
    {
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(data, digest);
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
    private static void AppendContentType(PooledBufferWriter buffer, string? contentType, bool keepParameters)
    {
        const string tag = "content-type";
        if (contentType is null)
        {
            AppendString(buffer, tag, null);
            return;
        }

        var mediaType = MediaType(contentType);
        var semicolon = contentType.IndexOf(';', StringComparison.Ordinal);
        var parameters = keepParameters && semicolon >= 0 ? contentType.AsSpan(semicolon).TrimEnd(" \t") : [];
        AppendTag(buffer, tag, null);
        buffer.Advance(WriteInt32(buffer, (mediaType.Length + parameters.Length) * 2));
        var lowered = buffer.GetSpan(mediaType.Length * 2);
        for (var i = 0; i < mediaType.Length; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(lowered[(i * 2)..], char.ToLowerInvariant(mediaType[i]));
        }

        buffer.Advance(mediaType.Length * 2);
        WriteUtf16(buffer, parameters);
    }

    private static void AppendPairs(PooledBufferWriter buffer, string tag, IEnumerable<KeyValuePair<string, string?>>? pairs, bool lowerCaseNames)
    {
        // The common request has no query and no fingerprinted header: no list, no sort.
        if (pairs is null || (pairs.TryGetNonEnumeratedCount(out var count) && count == 0))
        {
            AppendLength(buffer, tag, 0);
            return;
        }

        var list = new List<KeyValuePair<string, string?>>();
        foreach (var pair in pairs)
        {
            if (pair.Key is null)
            {
                throw new ArgumentException($"A {tag} name is null.", nameof(pairs));
            }

            list.Add(lowerCaseNames ? new(pair.Key.ToLowerInvariant(), pair.Value) : pair);
        }

        list.Sort(static (x, y) =>
        {
            var byName = string.CompareOrdinal(x.Key, y.Key);
            return byName != 0 ? byName : string.CompareOrdinal(x.Value, y.Value);
        });

        AppendLength(buffer, tag, list.Count);
        foreach (var pair in list)
        {
            AppendString(buffer, tag, ".name", pair.Key);
            AppendString(buffer, tag, ".value", pair.Value);
        }
    }

    private static void AppendLength(PooledBufferWriter buffer, string tag, int count)
    {
        AppendTag(buffer, tag, null);
        buffer.Advance(WriteInt32(buffer, count));
    }

    private static void AppendString(PooledBufferWriter buffer, string tag, string? value) => AppendString(buffer, tag, null, value);

    private static void AppendString(PooledBufferWriter buffer, string tag, string? suffix, string? value)
    {
        AppendTag(buffer, tag, suffix);
        if (value is null)
        {
            buffer.Advance(WriteInt32(buffer, NullLength));
            return;
        }

        buffer.Advance(WriteInt32(buffer, value.Length * 2));
        WriteUtf16(buffer, value);
    }

    private static void AppendBytes(PooledBufferWriter buffer, string tag, ReadOnlySpan<byte> value)
    {
        AppendTag(buffer, tag, null);
        buffer.Advance(WriteInt32(buffer, value.Length));
        buffer.Write(value);
    }

    private static void WriteUtf16(PooledBufferWriter buffer, ReadOnlySpan<char> value)
    {
        if (BitConverter.IsLittleEndian)
        {
            buffer.Write(MemoryMarshal.AsBytes(value));
            return;
        }

        var destination = buffer.GetSpan(value.Length * 2);
        for (var i = 0; i < value.Length; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(destination[(i * 2)..], value[i]);
        }

        buffer.Advance(value.Length * 2);
    }

    private static int WriteInt32(PooledBufferWriter buffer, int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(buffer.GetSpan(4), value);
        return 4;
    }

    private static void AppendTag(PooledBufferWriter buffer, string tag, string? suffix)
    {
        // Tags are short ASCII constants: a length byte, then the characters.
        var length = tag.Length + (suffix?.Length ?? 0);
        var bytes = buffer.GetSpan(length + 1);
        bytes[0] = (byte)length;
        for (var i = 0; i < tag.Length; i++)
        {
            bytes[i + 1] = (byte)tag[i];
        }

        for (var i = 0; i < (suffix?.Length ?? 0); i++)
        {
            bytes[tag.Length + i + 1] = (byte)suffix![i];
        }

        buffer.Advance(length + 1);
    }
}
