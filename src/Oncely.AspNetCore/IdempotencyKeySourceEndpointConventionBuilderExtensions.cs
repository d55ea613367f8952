using Microsoft.AspNetCore.Builder;

namespace Oncely.AspNetCore;

/// <summary>
/// Minimal-API conventions that read an idempotent endpoint's key from somewhere other than the <c>Idempotency-Key</c>
/// header: for webhook deliveries and queue-like callers whose operation already has an id. Use them together with
/// <c>RequireIdempotencyKey()</c> or <c>AllowIdempotencyKey()</c>. The value found obeys the same rules as an
/// <c>Idempotency-Key</c> (at most <see cref="IdempotencyEngineOptions.MaxKeyLength"/> visible ASCII characters, one value):
/// a missing key is answered <c>400 idempotency-key-missing</c> (or passes through unrecorded when the key is optional),
/// an invalid one <c>400 idempotency-key-invalid</c>. The last source set wins.
/// </summary>
public static class IdempotencyKeySourceEndpointConventionBuilderExtensions
{
    /// <summary>
    /// Reads the key from the request header <paramref name="headerName"/> (for example <c>webhook-id</c>) instead of
    /// <c>Idempotency-Key</c>. The header must be sent once, with one value; <c>X-Idempotency-Key</c> is not read. Default
    /// (without this call): <c>Idempotency-Key</c>, or its alias <c>X-Idempotency-Key</c>.
    /// </summary>
    /// <typeparam name="TBuilder">The endpoint builder type.</typeparam>
    /// <param name="builder">The endpoint.</param>
    /// <param name="headerName">The header that carries the key.</param>
    /// <returns>The same builder.</returns>
    public static TBuilder WithIdempotencyKeyFromHeader<TBuilder>(this TBuilder builder, string headerName)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.WithMetadata(new IdempotencyKeySourceMetadata(IdempotencyKeySource.FromHeader(headerName)));
    }

    /// <summary>
    /// Reads the key from a string member of the JSON request body: a top-level member name (<c>id</c>) or an RFC 6901
    /// JSON pointer (<c>/data/id</c>; array indexes such as <c>/items/0/id</c> work). The body is read (up to
    /// <see cref="IdempotencyOptions.MaxRequestBodySize"/>) before the key. Member names are matched ignoring case, the
    /// way ASP.NET Core binds them, and a body with two members that match is refused (<c>400 idempotency-key-invalid</c>),
    /// as are a body that is not JSON and a member that is not a string; a missing member or <c>null</c> means no key.
    /// Default (without this call): the <c>Idempotency-Key</c> header.
    /// </summary>
    /// <typeparam name="TBuilder">The endpoint builder type.</typeparam>
    /// <param name="builder">The endpoint.</param>
    /// <param name="member">A member name or a JSON pointer.</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentException"><paramref name="member"/> is empty or not a well-formed JSON pointer.</exception>
    public static TBuilder WithIdempotencyKeyFromJsonBody<TBuilder>(this TBuilder builder, string member)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.WithMetadata(new IdempotencyKeySourceMetadata(IdempotencyKeySource.FromJsonMember(member)));
    }
}

internal sealed class IdempotencyKeySourceMetadata(IdempotencyKeySource source)
{
    public IdempotencyKeySource Source { get; } = source;
}
