using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>
/// The key in a request header other than <c>Idempotency-Key</c> (a webhook provider's <c>webhook-id</c>): sent once, with
/// one value; no alias is read. Set with <c>WithIdempotencyKeyFromHeader</c> or <see cref="IdempotentAttribute.KeyHeader"/>.
/// </summary>
internal sealed class HeaderKeySource : IdempotencyKeySource
{
    private static readonly string[] NoValues = [];

    /// <param name="header">The header's name; surrounding spaces are ignored.</param>
    /// <exception cref="ArgumentException"><paramref name="header"/> is empty.</exception>
    public HeaderKeySource(string header)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(header);
        Header = header.Trim();
        Description = $"the {Header} header";
    }

    /// <inheritdoc />
    public override string Header { get; }

    /// <inheritdoc />
    public override string Description { get; }

    /// <inheritdoc />
    public override IdempotencyKeyReading Read(HttpRequest request, ReadOnlyMemory<byte> body, int maxKeyLength)
    {
        var values = request.Headers[Header];
        string? key;
        // One value (the usual request) is parsed without boxing the header values into a list; the list form gives the
        // same answer for it.
        var error = values.Count == 1
            ? IdempotencyKeyParser.TryParse(values[0], maxKeyLength, out key)
            : IdempotencyKeyParser.TryParse(values, NoValues, maxKeyLength, out key);
        return error == IdempotencyKeyError.None ? new(key, null) : new(null, DescribeInvalid(error, maxKeyLength));
    }

    /// <inheritdoc />
    public override string MissingDetail(HttpRequest request)
        => $"{request.Method} {request.Path} performs an effectful operation once per key, and reads the key from {Description}: send it, with one value that stays the same on every retry (or redelivery) of the operation.";
}
