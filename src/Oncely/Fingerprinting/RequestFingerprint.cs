// PLACEHOLDER until the fingerprint branch is merged (replaced wholesale).
using System.Security.Cryptography;

namespace Oncely;

/// <summary>Placeholder.</summary>
public readonly struct FingerprintInput
{
    /// <summary>Method.</summary>
    public string Method { get; init; }
    /// <summary>Path.</summary>
    public string Path { get; init; }
    /// <summary>Query.</summary>
    public IEnumerable<KeyValuePair<string, string?>> Query { get; init; }
    /// <summary>Headers.</summary>
    public IEnumerable<KeyValuePair<string, string?>> Headers { get; init; }
    /// <summary>Content type.</summary>
    public string? ContentType { get; init; }
    /// <summary>Body.</summary>
    public ReadOnlyMemory<byte> Body { get; init; }
}

/// <summary>Placeholder.</summary>
public static class RequestFingerprint
{
    /// <summary>Placeholder.</summary>
    public static string Compute(in FingerprintInput input) => Convert.ToHexStringLower(SHA256.HashData(input.Body.Span));

    /// <summary>Placeholder.</summary>
    public static bool IsJsonContentType(string? contentType) => contentType?.Contains("json", StringComparison.OrdinalIgnoreCase) == true;
}
