using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.Net.Http.Headers;

namespace Payments;

/// <summary>
/// How the sample reads JSON bodies: UTF-8 only, numbers strictly as numbers, and every refusal a 4xx problem+json
/// answered before the operation starts (so Oncely stores nothing and the key stays usable).
/// </summary>
public static class JsonBodies
{
    /// <summary>
    /// Refuses, with <c>415</c>, a request to an endpoint that reads a JSON body unless its <c>Content-Type</c> is
    /// <c>application/json</c> (or <c>*/*+json</c>) with no <c>charset</c> or a <c>charset</c> of <c>utf-8</c>, as a token
    /// or as a quoted string (<c>charset="utf-8"</c>, RFC 9110 §5.6.6: the same parameter value, in any case).
    /// </summary>
    /// <remarks>
    /// Runs before <c>UseIdempotency</c>. Minimal APIs hand any other charset to <c>ReadFromJsonAsync</c>, which throws an
    /// <see cref="InvalidOperationException"/> for a name it does not know (<c>charset=bogus</c>, <c>charset=</c>,
    /// <c>charset=utf-7</c>): a 500, after Oncely had reserved the key. JSON exchanged between systems is UTF-8
    /// (RFC 8259 §8.1), so known non-UTF-8 charsets are refused too. <c>ReadFromJsonAsync</c> also keeps the quotes of a
    /// quoted charset and fails on <c>"utf-8"</c>, so a quoted <c>utf-8</c> is rewritten to its token form here: the
    /// body is then read as UTF-8, and both spellings of one request reach Oncely as the same request (one fingerprint).
    /// </remarks>
    public static async Task RequireUtf8JsonAsync(HttpContext context, RequestDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        if (context.GetEndpoint()?.Metadata.GetMetadata<IAcceptsMetadata>() is { } accepts
            && accepts.ContentTypes.Any(type => type.Contains("json", StringComparison.OrdinalIgnoreCase)))
        {
            if (Utf8JsonContentType(context.Request.ContentType) is not { } contentType)
            {
                await PaymentProblems.UnsupportedMediaType(context.Request.ContentType).ExecuteAsync(context);
                return;
            }

            context.Request.ContentType = contentType;
        }

        await next(context);
    }

    /// <summary>
    /// The content type to read the body with: <paramref name="contentType"/> itself, or, when its charset is the quoted
    /// string <c>"utf-8"</c>, the same media type with the token <c>utf-8</c>; <see langword="null"/> when the body is not
    /// JSON in UTF-8.
    /// </summary>
    private static string? Utf8JsonContentType(string? contentType)
    {
        if (!MediaTypeHeaderValue.TryParse(contentType, out var mediaType))
        {
            return null;
        }

        var isJson = mediaType.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
            || (mediaType.Type.Equals("application", StringComparison.OrdinalIgnoreCase) && mediaType.Suffix.Equals("json", StringComparison.OrdinalIgnoreCase));
        var charsets = mediaType.Parameters.Where(p => p.Name.Equals("charset", StringComparison.OrdinalIgnoreCase)).ToList();
        if (!isJson || charsets.Count > 1)
        {
            return null;
        }

        if (charsets.Count == 0)
        {
            return contentType;
        }

        // GetUnescapedValue removes the quotes (and backslash escapes) of a quoted-string; a token comes back as it is.
        var charset = charsets[0];
        if (!charset.GetUnescapedValue().Equals("utf-8", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        if (!HeaderUtilities.IsQuoted(charset.Value))
        {
            return contentType;
        }

        charset.Value = "utf-8";
        return mediaType.ToString();
    }

    /// <summary>
    /// Turns the <see cref="BadHttpRequestException"/> that minimal APIs throw for a body they cannot bind (malformed JSON,
    /// <c>"amount": "100"</c> under <see cref="System.Text.Json.Serialization.JsonNumberHandling.Strict"/>) into a
    /// <c>400</c> problem+json naming the offending member. The exception passes through Oncely first, which releases
    /// the key: the handler never ran, so nothing is stored and the corrected request may reuse the key.
    /// </summary>
    public sealed class BadRequestHandler(IProblemDetailsService problems) : IExceptionHandler
    {
        public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
        {
            ArgumentNullException.ThrowIfNull(httpContext);
            if (exception is not BadHttpRequestException bad || httpContext.Response.HasStarted)
            {
                return false;
            }

            var (type, title, detail) = bad.StatusCode switch
            {
                StatusCodes.Status400BadRequest => ("invalid-body", "Invalid request body", InvalidBodyDetail(bad)),
                StatusCodes.Status415UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type", PaymentProblems.UnsupportedMediaTypeDetail(httpContext.Request.ContentType)),
                _ => ("bad-request", "Bad request", bad.Message),
            };
            httpContext.Response.StatusCode = bad.StatusCode;
            await problems.WriteAsync(new ProblemDetailsContext
            {
                HttpContext = httpContext,
                ProblemDetails = { Status = bad.StatusCode, Type = PaymentProblems.TypeBase + type, Title = title, Detail = detail },
            });
            return true;
        }

        private static string InvalidBodyDetail(BadHttpRequestException bad)
        {
            var at = bad.InnerException is JsonException { Path: { Length: > 0 } path } ? $" at {path}" : string.Empty;
            return $"The body is not the JSON this endpoint reads{at}. Send one JSON object; amounts are JSON integers in minor units (\"amount\": 250, not \"250\" or 2.5).";
        }
    }

    /// <summary>The whole body, or <see langword="null"/> when it is longer than <paramref name="maxBytes"/>.</summary>
    public static async Task<byte[]?> ReadCappedAsync(HttpRequest request, int maxBytes, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[8192];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > maxBytes)
            {
                return null;
            }

            buffer.Write(chunk, 0, read);
        }

        return buffer.ToArray();
    }
}
