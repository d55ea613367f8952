using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Oncely.AspNetCore;

namespace Oncely.Webhooks;

/// <summary>
/// Accepts only Standard Webhooks deliveries signed by one of <see cref="Senders"/> on an MVC action or controller, and
/// scopes the action's idempotency records by the verified sender. Combine it with
/// <c>[Idempotent(KeyHeader = "webhook-id")]</c> (minimal APIs: <c>.AcceptStandardWebhooks(...)</c> does both).
/// Secrets come from <c>AddStandardWebhooks(...)</c>.
/// </summary>
/// <param name="senders">The names of the senders accepted (keys of <see cref="StandardWebhooksOptions.Senders"/>).</param>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method, AllowMultiple = false, Inherited = true)]
public sealed class StandardWebhookAttribute(params string[] senders) : Attribute, IIdempotencySenderVerifier
{
    /// <summary>The names of the senders whose signatures are accepted. Default: none (set in the constructor).</summary>
    public IReadOnlyList<string> Senders { get; } = StandardWebhookSenders.Check(senders);

    /// <inheritdoc />
    public ValueTask<IdempotencySenderVerification> VerifyAsync(HttpContext context, ReadOnlyMemory<byte> body, CancellationToken cancellationToken)
        => StandardWebhookSenders.VerifyAsync(context, body, Senders);

    /// <inheritdoc />
    IdempotencySenderDescription? IIdempotencySenderVerifier.Describe(IServiceProvider services) => StandardWebhookDocumentation.Describe(services);
}
