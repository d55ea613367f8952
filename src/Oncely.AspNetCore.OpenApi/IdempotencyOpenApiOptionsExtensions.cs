using Oncely.AspNetCore.OpenApi;

namespace Microsoft.AspNetCore.OpenApi;

/// <summary>Documents Oncely's contract in the OpenAPI documents that <c>Microsoft.AspNetCore.OpenApi</c> generates.</summary>
public static class IdempotencyOpenApiOptionsExtensions
{
    /// <summary>
    /// Adds an operation transformer that documents, on every idempotent endpoint (<c>RequireIdempotencyKey()</c>,
    /// <c>AllowIdempotencyKey()</c>, <c>[Idempotent]</c>): the <c>Idempotency-Key</c> header parameter (required or
    /// optional as the endpoint says, with its length limit and character set); the answers Oncely itself can give, as
    /// <c>application/problem+json</c> (<c>400</c>, <c>401</c> unless the endpoint serves anonymous callers, <c>409</c>
    /// and <c>503</c> with <c>Retry-After</c>, the key-reuse status, <c>422</c> by default, and <c>413</c>); and the
    /// <c>Idempotent-Replayed</c> header on every response the endpoint declares that Oncely stores and replays. An endpoint
    /// with a sender verifier (a Standard Webhooks receiver) is documented as its verifier describes it
    /// (<c>IIdempotencySenderVerifier.Describe</c>): its required headers (<c>webhook-id</c>, <c>webhook-timestamp</c>,
    /// <c>webhook-signature</c>) and the <c>401</c> for a missing or bad signature, without the client key advice.
    /// Endpoints without idempotency are left untouched. Statuses the endpoint already declares keep their own
    /// description and content; Oncely's meaning is added to them.
    /// </summary>
    /// <param name="options">From <c>services.AddOpenApi(options => …)</c>.</param>
    /// <returns>The same options.</returns>
    public static OpenApiOptions AddIdempotencyTransformer(this OpenApiOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.AddOperationTransformer(new IdempotencyOperationTransformer());
    }
}
