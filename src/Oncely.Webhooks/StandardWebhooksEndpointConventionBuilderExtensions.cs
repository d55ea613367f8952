using Oncely.AspNetCore;
using Oncely.Webhooks;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Minimal-API conventions for endpoints that receive Standard Webhooks deliveries.</summary>
public static class StandardWebhooksEndpointConventionBuilderExtensions
{
    /// <summary>
    /// Makes the endpoint a Standard Webhooks receiver that runs each delivery once: the body is read, the signature is
    /// verified against the secrets of <paramref name="senders"/> (a delivery that is unsigned, signed with an unknown
    /// secret, or stale is answered <c>401</c> problem+json, nothing recorded, nothing run), then the delivery is made
    /// idempotent with its <c>webhook-id</c> as the key and the verified sender as the tenant. A redelivery gets the stored
    /// answer at once without running the handler; the same id with another body gets <c>422</c>; a redelivery that
    /// arrives while the first is still running gets <c>409</c> + <c>Retry-After</c>. It does not make the endpoint
    /// anonymous: with a fallback authorization policy, add <c>.AllowAnonymous()</c> (the signature is the
    /// authentication). Take the key from the body instead by adding <c>.WithIdempotencyKeyFromJsonBody("/data/id")</c>.
    /// </summary>
    /// <typeparam name="TBuilder">The endpoint builder type.</typeparam>
    /// <param name="builder">The endpoint.</param>
    /// <param name="senders">The senders accepted: names configured in <c>AddStandardWebhooks(...)</c>.</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentException">No sender is named, or a name is empty.</exception>
    public static TBuilder AcceptStandardWebhooks<TBuilder>(this TBuilder builder, params string[] senders)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        var metadata = new StandardWebhookSenders(senders);
        return builder
            .RequireIdempotencyKey()
            .WithIdempotencyKeyFromHeader(StandardWebhooksOptions.IdHeaderName)
            .WithMetadata(metadata);
    }
}
