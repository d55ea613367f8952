namespace Oncely.Http;

/// <summary>Reads the idempotency key that the handler sent, from a request or its response.</summary>
public static class IdempotencyKeyHttpMessageExtensions
{
    /// <summary>
    /// Gets the <see cref="HttpRequestMessage.Options"/> entry (named <c>Oncely.IdempotencyKey</c>) that holds the key of a
    /// request, without quotes. The handler sets it; if a caller sets it before sending, the handler sends that key instead
    /// of making one (a key in the header still wins). Default: absent until the handler has seen the request.
    /// </summary>
    public static HttpRequestOptionsKey<string> RequestOptionsKey { get; } = new("Oncely.IdempotencyKey");

    /// <summary>
    /// Gets the idempotency key that was sent with the request that produced this response (generated or the caller's own,
    /// without quotes).
    /// </summary>
    /// <param name="response">A response from an <see cref="HttpClient"/> that has the idempotency handler.</param>
    /// <returns>The key; <see langword="null"/> (the default) when the request had none, for example a <c>GET</c>.</returns>
    public static string? GetIdempotencyKey(this HttpResponseMessage response)
    {
        ArgumentNullException.ThrowIfNull(response);
        return response.RequestMessage?.GetIdempotencyKey();
    }

    /// <summary>Gets the idempotency key that the handler attached to (or kept on) this request, without quotes.</summary>
    /// <param name="request">A request sent through an <see cref="HttpClient"/> that has the idempotency handler.</param>
    /// <returns>The key; <see langword="null"/> (the default) when the request had none or has not been sent yet.</returns>
    public static string? GetIdempotencyKey(this HttpRequestMessage request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return request.Options.TryGetValue(RequestOptionsKey, out var key) ? key : null;
    }
}
