using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Oncely.AspNetCore;

/// <summary>
/// Refuses to start when two idempotent endpoints would keep their records under the same operation: they would
/// replay each other's answers. Each endpoint must be its own operation. Runs once the application's pipeline is built,
/// when every endpoint is known.
/// </summary>
internal sealed partial class IdempotencyEndpointValidation : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        next(app);

        // AddRouting registers the composite of every data source; without routing there are no endpoints to check.
        if (app.ApplicationServices.GetService<EndpointDataSource>() is { } endpoints)
        {
            Validate(endpoints.Endpoints, app.ApplicationServices.GetRequiredService<IOptions<IdempotencyOptions>>().Value);
            ValidatePoliciesAndAdministration(endpoints.Endpoints, app.ApplicationServices);
        }
    };

    // Minimal APIs get the guard from the conventions; MVC actions from [Idempotent], which is also a resource filter.
    private static bool IsGuarded(Endpoint endpoint)
        => endpoint.Metadata.Contains(IdempotencyEndpointGuard.Marker)
            || (endpoint.Metadata.GetMetadata<Microsoft.AspNetCore.Mvc.Abstractions.ActionDescriptor>() is not null
                && endpoint.Metadata.GetMetadata<IdempotentAttribute>() is not null);

    internal static void Validate(IEnumerable<Endpoint> endpoints, IdempotencyOptions options)
    {
        var owners = new Dictionary<string, Endpoint>(StringComparer.Ordinal);
        var clashes = new List<string>();
        var unguarded = new List<string>();
        foreach (var endpoint in endpoints)
        {
            if (IdempotencyEndpoint.Describe(endpoint, options) is not { } idempotent)
            {
                continue;
            }

            if (!IsGuarded(endpoint))
            {
                unguarded.Add($"'{endpoint.DisplayName}'");
            }

            var methods = endpoint.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods;
            foreach (var method in methods is { Count: > 0 } ? methods : ["*"])
            {
                var operation = idempotent.OperationFor(method);
                if (!owners.TryAdd(operation, endpoint) && !ReferenceEquals(owners[operation], endpoint))
                {
                    clashes.Add($"'{owners[operation].DisplayName}' and '{endpoint.DisplayName}' both keep their records under operation '{operation}'");
                }
            }
        }

        if (unguarded.Count > 0)
        {
            throw new InvalidOperationException(
                "Oncely: idempotency metadata was added to " + string.Join(", ", unguarded)
                + " without the guard that refuses to run the endpoint when the idempotency middleware did not handle the request. "
                + "Mark minimal-API endpoints with .RequireIdempotencyKey() or .AllowIdempotencyKey() (not WithMetadata), and MVC actions with [Idempotent].");
        }

        if (clashes.Count > 0)
        {
            throw new InvalidOperationException(
                "Oncely: two idempotent endpoints must never share records, or one would replay the other's answers: "
                + string.Join("; ", clashes)
                + ". Give one of them its own operation name with .WithIdempotencyOperation(\"…\") or [Idempotent(Operation = \"…\")].");
        }
    }
}
