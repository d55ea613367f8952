namespace Oncely.AspNetCore;

/// <summary>
/// A request header that every request to a sender-verified endpoint must carry (a webhook's id, timestamp or signature),
/// as an <see cref="IIdempotencySenderVerifier"/> describes it for API documentation.
/// </summary>
public sealed class IdempotencySenderHeader
{
    /// <summary>Describes one required header.</summary>
    /// <param name="name">The header's name, for example <c>webhook-signature</c>.</param>
    /// <param name="description">What the header holds and how the sender computes it.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> or <paramref name="description"/> is empty.</exception>
    public IdempotencySenderHeader(string name, string description)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentException.ThrowIfNullOrWhiteSpace(description);
        Name = name;
        Description = description;
    }

    /// <summary>The header's name. Set in the constructor.</summary>
    public string Name { get; }

    /// <summary>What the header holds and how the sender computes it. Set in the constructor.</summary>
    public string Description { get; }

    /// <summary>
    /// A regular expression every acceptable value matches, documented as the header's schema pattern. Default:
    /// <see langword="null"/> (any string).
    /// </summary>
    public string? Pattern { get; init; }

    /// <summary>An example value. Default: <see langword="null"/> (none).</summary>
    public string? Example { get; init; }
}
