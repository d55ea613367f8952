namespace Oncely;

/// <summary>
/// The parts of a request that <see cref="RequestFingerprint.Compute(in FingerprintInput)"/> hashes. Only what is set
/// here takes part: headers outside the caller's allow-list (such as <c>Authorization</c> or <c>Date</c>) are never
/// passed in.
/// </summary>
public readonly struct FingerprintInput
{
    /// <summary>Creates an input with a method and a path; every other part starts empty.</summary>
    /// <param name="method">The HTTP method (or, beyond HTTP, the operation's verb). Compared case-insensitively.</param>
    /// <param name="path">The request path, compared exactly (ordinal, case-sensitive).</param>
    /// <exception cref="ArgumentException"><paramref name="method"/> is <see langword="null"/> or empty.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is <see langword="null"/>.</exception>
    public FingerprintInput(string method, string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(method);
        ArgumentNullException.ThrowIfNull(path);
        Method = method;
        Path = path;
    }

    /// <summary>The HTTP method; hashed upper-cased (invariant culture), so <c>post</c> and <c>POST</c> are the same.</summary>
    public string Method { get; }

    /// <summary>The request path, hashed exactly as given (ordinal, case-sensitive, not decoded or normalised).</summary>
    public string Path { get; }

    /// <summary>
    /// The query parameters. Hashed sorted by name, then by value (ordinal), so their order in the URL does not matter;
    /// a <see langword="null"/> value (<c>?flag</c>) differs from an empty one (<c>?flag=</c>). Default: none.
    /// </summary>
    public IEnumerable<KeyValuePair<string, string?>> Query { get; init; } = [];

    /// <summary>
    /// The allow-listed request headers. Names are compared case-insensitively (hashed lower-cased); values are hashed
    /// exactly as given. Hashed sorted by name, then by value (ordinal). Default: none.
    /// </summary>
    public IEnumerable<KeyValuePair<string, string?>> Headers { get; init; } = [];

    /// <summary>
    /// The request's <c>Content-Type</c>, or <see langword="null"/> when absent (the default). It decides whether the
    /// body is canonicalised as JSON (see <see cref="RequestFingerprint.IsJsonContentType(string?)"/>) and is itself hashed:
    /// the media type lower-cased, with its parameters for bodies hashed as raw bytes, without them for canonical JSON.
    /// </summary>
    public string? ContentType { get; init; }

    /// <summary>The request body. Default: empty, which hashes as an empty raw body whatever the content type.</summary>
    public ReadOnlyMemory<byte> Body { get; init; }
}
