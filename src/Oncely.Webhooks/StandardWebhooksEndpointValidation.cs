using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Oncely.AspNetCore;

namespace Oncely.Webhooks;

/// <summary>
/// Refuses to start when a Standard Webhooks endpoint names a sender that has no secrets (every delivery would be
/// refused), when such an endpoint is not idempotent (its verified sender would scope nothing), or when its records do not
/// outlive every delivery its signature check would still accept: a timestamp may lie up to one tolerance ahead of the
/// receiver's clock and is accepted until one tolerance after it, so a captured delivery can be replayed for up to twice
/// the tolerance after it first ran, and the endpoint's effective expiration (its named policy's, else the global one)
/// must be longer than that.
/// </summary>
internal sealed class StandardWebhooksEndpointValidation : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        next(app);
        var services = app.ApplicationServices;
        if (services.GetService<EndpointDataSource>() is { } endpoints)
        {
            Validate(endpoints.Endpoints, services.GetRequiredService<StandardWebhookVerifier>(), services.GetRequiredService<IOptions<IdempotencyOptions>>().Value);
        }
    };

    internal static void Validate(IEnumerable<Endpoint> endpoints, StandardWebhookVerifier verifier, IdempotencyOptions options)
    {
        var problems = new List<string>();
        foreach (var endpoint in endpoints)
        {
            var senders = endpoint.Metadata.GetMetadata<IIdempotencySenderVerifier>() switch
            {
                StandardWebhookSenders metadata => metadata.Senders,
                StandardWebhookAttribute attribute => attribute.Senders,
                _ => null,
            };
            if (senders is null)
            {
                continue;
            }

            if (endpoint.Metadata.GetMetadata<IIdempotencyMetadata>() is null)
            {
                problems.Add($"'{endpoint.DisplayName}' verifies Standard Webhooks but is not idempotent: add [Idempotent(KeyHeader = \"webhook-id\")] (minimal APIs: use .AcceptStandardWebhooks(...))");
            }
            else if (ExpirationProblem(endpoint, verifier.Tolerance, options) is { } expiration)
            {
                problems.Add(expiration);
            }

            foreach (var sender in senders.Where(s => !verifier.Knows(s)))
            {
                problems.Add($"'{endpoint.DisplayName}' accepts sender '{sender}', which has no secrets: add it with AddStandardWebhooks(o => o.AddSender(\"{sender}\", \"whsec_…\")) or under StandardWebhooksOptions.Senders in configuration");
            }
        }

        if (problems.Count > 0)
        {
            throw new InvalidOperationException("Oncely.Webhooks: " + string.Join("; ", problems) + ".");
        }
    }

    // The endpoint's records live for its effective expiration: the Expiration of the named policy it asks for when that
    // policy sets one, else IdempotencyOptions.Expiration (as the middleware applies them). An unknown policy name is
    // refused by Oncely.AspNetCore's own start-up check; here it counts as the global expiration.
    private static string? ExpirationProblem(Endpoint endpoint, TimeSpan tolerance, IdempotencyOptions options)
    {
        var policyName = IdempotencyEndpointSettings.PolicyNameOf(endpoint);
        var policyExpiration = policyName is not null && options.Policies.TryGetValue(policyName, out var policy) ? policy.Expiration : null;
        var expiration = policyExpiration ?? options.Expiration;

        // expiration > 2 × tolerance, written so that no tolerance overflows.
        if (expiration - tolerance > tolerance)
        {
            return null;
        }

        var setting = policyExpiration is null
            ? "IdempotencyOptions.Expiration (AddIdempotency(o => o.Expiration = ...))"
            : $"the Expiration of its idempotency policy '{policyName}' (AddPolicy(\"{policyName}\", p => p.Expiration = ...) or Oncely:Policies:{policyName}:Expiration)";
        return string.Create(
            CultureInfo.InvariantCulture,
            $"'{endpoint.DisplayName}' keeps its records for {expiration}, from {setting}, which is not longer than twice StandardWebhooksOptions.TimestampTolerance ({tolerance}): a delivery may be signed up to one tolerance ahead of this server's clock and is accepted until one tolerance after its timestamp, so a captured delivery replayed after its record expired would run again. Set that Expiration above twice the tolerance (cover the provider's whole retry schedule: 3 days suits most providers), or shorten TimestampTolerance");
    }
}
