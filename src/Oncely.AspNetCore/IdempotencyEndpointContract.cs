using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Oncely.AspNetCore;

/// <summary>
/// What a client of one idempotent endpoint has to know, read from the endpoint's metadata and the options in force:
/// the header that carries the key and its limits, whether it is required, and the refusals the middleware can answer
/// with. Describes the endpoint to API documentation (the OpenAPI transformer in <c>Oncely.AspNetCore.OpenApi</c>), so
/// it must say what the middleware does: every place that reads the metadata differently there reads it here too.
/// </summary>
internal sealed record IdempotencyEndpointContract(
    bool KeyRequired,
    bool AllowAnonymous,
    string? KeyHeader,
    string KeyLocation,
    bool SenderVerified,
    IdempotencySenderDescription? Sender,
    string? AliasHeader,
    int MaxKeyLength,
    int KeyReusedStatusCode,
    bool StoreServerErrors,
    TimeSpan InProgressRetryAfter,
    TimeSpan StoreUnavailableRetryAfter,
    int MaxRequestBodySize,
    TimeSpan Expiration,
    string ProblemTypeBaseUri,
    IReadOnlySet<int> RetryableStatusCodes)
{
    /// <summary>The contract of an endpoint, or <see langword="null"/> when it is not idempotent (row 1).</summary>
    /// <param name="metadata">The endpoint's metadata (<c>Endpoint.Metadata</c>, or an API description's <c>EndpointMetadata</c>).</param>
    /// <param name="services">The application's services, for the options in force.</param>
    public static IdempotencyEndpointContract? For(IEnumerable<object> metadata, IServiceProvider services)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(services);
        var collection = metadata as EndpointMetadataCollection ?? new EndpointMetadataCollection(metadata);
        if (collection.GetMetadata<IIdempotencyMetadata>() is not { } idempotency)
        {
            return null;
        }

        var options = services.GetService<IOptions<IdempotencyOptions>>()?.Value ?? new IdempotencyOptions();
        var policy = PolicyFor(collection, options);
        var source = IdempotencyKeySource.For(collection, idempotency, displayName: null);
        var verifier = collection.GetMetadata<IIdempotencySenderVerifier>();
        return new IdempotencyEndpointContract(
            idempotency.KeyRequired,
            idempotency.AllowAnonymous || collection.GetMetadata<AnonymousIdempotencyScopeMetadata>() is not null,
            source is null ? IdempotencyOptions.HeaderName : source.Header,
            source?.Description ?? $"the {IdempotencyOptions.HeaderName} header",
            verifier is not null,
            verifier?.Describe(services),
            source is null && options.AcceptAliasHeader ? IdempotencyOptions.AliasHeaderName : null,
            options.MaxKeyLength,
            policy?.KeyReusedStatusCode ?? options.KeyReusedStatusCode,
            policy?.StoreServerErrors ?? options.StoreServerErrors,
            options.InProgressRetryAfter,
            options.StoreUnavailableRetryAfter,
            policy?.MaxRequestBodySize ?? options.MaxRequestBodySize,
            policy?.Expiration ?? options.Expiration,
            options.ProblemTypeBaseUri,
            (policy?.RetryableStatusCodes ?? options.RetryableStatusCodes).ToHashSet());
    }

    /// <summary>
    /// Whether the sender verifier requires the header the key is read from (a webhook's <c>webhook-id</c>): then a request
    /// without it is refused by the verifier (<c>401</c>) before its key is read, never with <c>400</c> key-missing.
    /// </summary>
    public bool SenderRequiresKeyHeader => KeyHeader is { } header
        && Sender?.Headers.Any(h => string.Equals(h.Name, header, StringComparison.OrdinalIgnoreCase)) == true;

    /// <summary>Whether the middleware stores (and so replays) a handler's answer with this status (rows 10 and 11).</summary>
    public bool Stores(int status) => status >= 500
        ? StoreServerErrors
        : status >= 200 && !RetryableStatusCodes.Contains(status);

    // The named policy the middleware applies to this endpoint (as IdempotencyEndpointSettings does), or null.
    private static IdempotencyEndpointPolicy? PolicyFor(EndpointMetadataCollection metadata, IdempotencyOptions options)
        => IdempotencyEndpointSettings.PolicyNameOf(metadata) is { } name && options.Policies.TryGetValue(name, out var policy) ? policy : null;
}
