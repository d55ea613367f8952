namespace Oncely;

/// <summary>
/// The first answer of an operation, kept byte for byte so every retry can be answered with it.
/// </summary>
public sealed class IdempotentResponse
{
    /// <summary>Creates a stored response.</summary>
    /// <param name="statusCode">The status code the operation answered.</param>
    /// <param name="headers">The allow-listed headers to replay, in order. Never contains <c>Set-Cookie</c>.</param>
    /// <param name="body">The exact body bytes.</param>
    /// <param name="bodyOmitted"><see langword="true"/> when the body was over the stored-response limit and was not kept.</param>
    public IdempotentResponse(int statusCode, IReadOnlyList<KeyValuePair<string, string>> headers, ReadOnlyMemory<byte> body, bool bodyOmitted = false)
    {
        ArgumentNullException.ThrowIfNull(headers);
        StatusCode = statusCode;
        Headers = headers;
        Body = body;
        BodyOmitted = bodyOmitted;
    }

    /// <summary>The status code of the first answer (for message consumers: any code the handler chooses, 0 by default).</summary>
    public int StatusCode { get; }

    /// <summary>The headers to replay, in the order they were sent.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; }

    /// <summary>The exact body bytes of the first answer (empty when <see cref="BodyOmitted"/>).</summary>
    public ReadOnlyMemory<byte> Body { get; }

    /// <summary>
    /// <see langword="true"/> when the first answer's body exceeded the stored-response limit: the operation ran and
    /// is Completed, but its body cannot be replayed. Retries never execute the operation again.
    /// </summary>
    public bool BodyOmitted { get; }
}
