namespace Oncely.AspNetCore;

/// <summary>
/// Settings of the operator API (<c>MapIdempotencyAdmin</c>): what a record's detail
/// (<c>GET {prefix}/records/detail</c>) may show of the stored answer. See <c>docs/operator-api.md</c>.
/// </summary>
public sealed class IdempotencyAdminOptions
{
    /// <summary>The largest value <see cref="StoredBodyDisplayLimit"/> accepts (64 KiB).</summary>
    public const int MaxStoredBodyDisplayLimit = 64 * 1024;

    /// <summary>
    /// Whether a record's detail returns the stored answer's body (as text, card numbers masked, at most
    /// <see cref="StoredBodyDisplayLimit"/> characters). Stored bodies are copies of what the application answered its
    /// customers (payment data), so they are never returned unless this is on; the status code, the headers and the
    /// body's length always are. Default: <see langword="false"/>.
    /// </summary>
    public bool ShowStoredBodies { get; set; }

    /// <summary>
    /// How many characters of a stored body a record's detail returns when <see cref="ShowStoredBodies"/> is on; the rest
    /// is cut and the answer says so (<c>bodyTruncated</c>). From 1 to <see cref="MaxStoredBodyDisplayLimit"/>.
    /// Default: 4096.
    /// </summary>
    public int StoredBodyDisplayLimit { get; set; } = 4096;
}
