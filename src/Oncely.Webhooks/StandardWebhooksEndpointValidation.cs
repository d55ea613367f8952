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
/// refused), when such an endpoint is not idempotent (its verified sender would scope nothing), or when the timestamp
/// tolerance is not shorter than the records' expiration (a captured delivery replayed after its record expired, but
/// within the tolerance, would run again).
/// </summary>
internal sealed class StandardWebhooksEndpointValidation : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        next(app);
        var services = app.ApplicationServices;
        var verifier = services.GetRequiredService<StandardWebhookVerifier>();
        var expiration = services.GetService<IOptions<IdempotencyOptions>>()?.Value.Expiration;
        if (expiration is { } ttl && verifier.Tolerance >= ttl)
        {
            throw new InvalidOperationException(
                $"Oncely.Webhooks: TimestampTolerance ({verifier.Tolerance}) must be shorter than the records' Expiration ({ttl}): a delivery replayed after its record expired, but still within the tolerance, would run again. Shorten the tolerance or lengthen Expiration.");
        }

        if (services.GetService<EndpointDataSource>() is { } endpoints)
        {
            Validate(endpoints.Endpoints, verifier);
        }
    };

    internal static void Validate(IEnumerable<Endpoint> endpoints, StandardWebhookVerifier verifier)
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
}
