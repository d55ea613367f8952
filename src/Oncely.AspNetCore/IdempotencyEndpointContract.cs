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
    string KeyHeader,
    string? AliasHeader,
    int MaxKeyLength,
    int KeyReusedStatusCode,
    bool StoreServerErrors,
    TimeSpan InProgressRetryAfter,
    TimeSpan StoreUnavailableRetryAfter,
    int MaxRequestBodySize,
    TimeSpan Expiration,
    string ProblemTypeBaseUri)
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

        var options = OptionsFor(collection, services);
        return new IdempotencyEndpointContract(
            idempotency.KeyRequired,
            idempotency.AllowAnonymous || collection.GetMetadata<AnonymousIdempotencyScopeMetadata>() is not null,
            KeyHeaderFor(collection),
            options.AcceptAliasHeader ? IdempotencyOptions.AliasHeaderName : null,
            options.MaxKeyLength,
            options.KeyReusedStatusCode,
            options.StoreServerErrors,
            options.InProgressRetryAfter,
            options.StoreUnavailableRetryAfter,
            options.MaxRequestBodySize,
            options.Expiration,
            options.ProblemTypeBaseUri);
    }

    /// <summary>Whether the middleware stores (and so replays) a handler's answer with this status (rows 10 and 11).</summary>
    public bool Stores(int status) => status >= 500
        ? StoreServerErrors
        : status is >= 200 and not (StatusCodes.Status408RequestTimeout or StatusCodes.Status409Conflict or 425 or StatusCodes.Status429TooManyRequests);

    // The options the middleware applies to this endpoint.
    private static IdempotencyOptions OptionsFor(EndpointMetadataCollection metadata, IServiceProvider services)
        => services.GetService<IOptions<IdempotencyOptions>>()?.Value ?? new IdempotencyOptions();

    // The header the endpoint reads its key from.
    private static string KeyHeaderFor(EndpointMetadataCollection metadata) => IdempotencyOptions.HeaderName;
}
