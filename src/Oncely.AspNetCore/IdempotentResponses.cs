using System.Diagnostics.CodeAnalysis;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>
/// Builds an answer before it is sent, for transactional completion: the handler stores exactly these bytes inside its
/// own transaction (<see cref="IdempotencyExecution.CompleteInTransactionAsync"/>), commits, then returns
/// <see cref="ToResult"/> so the first caller and every retry see the same bytes.
/// </summary>
public static class IdempotentResponses
{
#pragma warning disable RS0026 // Two overloads with optional parameters, as Results.Json has: the JsonTypeInfo<T> one needs its metadata argument, so no call can be ambiguous.
    /// <summary>A JSON answer, serialised with <paramref name="options"/> (default: <see cref="JsonSerializerOptions.Web"/>, as minimal APIs use).</summary>
    /// <typeparam name="T">The value's type.</typeparam>
    /// <param name="statusCode">The status code, for example 201.</param>
    /// <param name="value">The body.</param>
    /// <param name="location">An optional <c>Location</c> header.</param>
    /// <param name="options">Serializer settings; default: web defaults (camelCase).</param>
    /// <returns>The answer, with <c>Content-Type: application/json; charset=utf-8</c>.</returns>
    [RequiresUnreferencedCode("Serialises T by reflection. Under trimming or Native AOT, pass a JsonTypeInfo<T> from a JsonSerializerContext instead.")]
    [RequiresDynamicCode("Serialises T by reflection. Under trimming or Native AOT, pass a JsonTypeInfo<T> from a JsonSerializerContext instead.")]
    public static IdempotentResponse Json<T>(int statusCode, T value, string? location = null, JsonSerializerOptions? options = null)
        => Answer(statusCode, JsonSerializer.SerializeToUtf8Bytes(value, options ?? JsonSerializerOptions.Web), location);

    /// <summary>
    /// A JSON answer, serialised with source-generated metadata (<c>AppJsonContext.Default.Payment</c>): the overload for
    /// trimmed and Native AOT apps.
    /// </summary>
    /// <typeparam name="T">The value's type.</typeparam>
    /// <param name="statusCode">The status code, for example 201.</param>
    /// <param name="value">The body.</param>
    /// <param name="jsonTypeInfo">The type's metadata from a <see cref="System.Text.Json.Serialization.JsonSerializerContext"/>.</param>
    /// <param name="location">An optional <c>Location</c> header.</param>
    /// <returns>The answer, with <c>Content-Type: application/json; charset=utf-8</c>.</returns>
    public static IdempotentResponse Json<T>(int statusCode, T value, JsonTypeInfo<T> jsonTypeInfo, string? location = null)
    {
        ArgumentNullException.ThrowIfNull(jsonTypeInfo);
        return Answer(statusCode, JsonSerializer.SerializeToUtf8Bytes(value, jsonTypeInfo), location);
    }

#pragma warning restore RS0026

    private static IdempotentResponse Answer(int statusCode, byte[] body, string? location)
    {
        var headers = new List<KeyValuePair<string, string>>(2) { new("Content-Type", "application/json; charset=utf-8") };
        if (location is not null)
        {
            headers.Add(new("Location", location));
        }

        return new IdempotentResponse(statusCode, headers, body);
    }

    /// <summary>An <see cref="IResult"/> that writes exactly this answer's status, headers and body.</summary>
    /// <param name="response">The answer.</param>
    /// <returns>The result to return from the handler.</returns>
    public static IResult ToResult(this IdempotentResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        return new StoredResult(response);
    }

    private sealed class StoredResult(IdempotentResponse response) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            var target = httpContext.Response;
            target.StatusCode = response.StatusCode;
            foreach (var (name, value) in response.Headers)
            {
                target.Headers.Append(name, value);
            }

            target.ContentLength = response.Body.Length;
            if (!response.Body.IsEmpty)
            {
                await target.Body.WriteAsync(response.Body, httpContext.RequestAborted).ConfigureAwait(false);
            }
        }
    }
}
