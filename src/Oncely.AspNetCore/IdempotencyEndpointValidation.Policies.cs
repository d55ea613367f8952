using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Oncely.AspNetCore;

// Start-up checks of named policies and of the operator API, next to the operation checks.
internal sealed partial class IdempotencyEndpointValidation
{
    /// <summary>
    /// Refuses to start when an idempotent endpoint names a policy that is not registered, or when the operator API is
    /// mapped unsecured, open to any authenticated caller, or made idempotent by a group convention; warns when the store
    /// cannot serve the operator API.
    /// </summary>
    /// <exception cref="InvalidOperationException">Something above; the message says what to change.</exception>
    internal static void ValidatePoliciesAndAdministration(IReadOnlyList<Endpoint> endpoints, IServiceProvider services)
    {
        IdempotencyOptions? options = null;
        var unknown = new List<string>();
        var admin = new List<Endpoint>();
        foreach (var endpoint in endpoints)
        {
            if (endpoint.Metadata.GetMetadata<IdempotencyAdminEndpointMetadata>() is not null)
            {
                admin.Add(endpoint);
            }

            if (endpoint.Metadata.GetMetadata<IIdempotencyMetadata>() is null || IdempotencyEndpointSettings.PolicyNameOf(endpoint) is not { } name)
            {
                continue;
            }

            options ??= services.GetRequiredService<IOptions<IdempotencyOptions>>().Value;
            if (!options.Policies.ContainsKey(name))
            {
                unknown.Add($"'{endpoint.DisplayName}' asks for '{name}'");
            }
        }

        if (unknown.Count > 0)
        {
            var registered = options!.Policies.Count == 0 ? "none" : string.Join(", ", options.Policies.Keys.Order(StringComparer.OrdinalIgnoreCase).Select(k => $"'{k}'"));
            throw new InvalidOperationException(
                "Oncely: idempotent endpoints name policies that are not registered: " + string.Join("; ", unknown)
                + $" (registered: {registered}). Add each with AddIdempotency(o => o.AddPolicy(\"name\", p => ...)) or in configuration under Oncely:Policies:name, or correct the name.");
        }

        if (admin.Count > 0)
        {
            ValidateAdministration(admin, services);
        }
    }

    private static void ValidateAdministration(List<Endpoint> endpoints, IServiceProvider services)
    {
        var idempotent = endpoints.Where(e => e.Metadata.GetMetadata<IIdempotencyMetadata>() is not null).Select(e => $"'{e.DisplayName}'").ToList();
        if (idempotent.Count > 0)
        {
            throw new InvalidOperationException(
                "Oncely: the operator API's endpoints must not be idempotent, but a convention of the group they were mapped into made "
                + string.Join(", ", idempotent) + " idempotent. Map MapIdempotencyAdmin(...) on the application or on a group without RequireIdempotencyKey()/AllowIdempotencyKey().");
        }

        var open = endpoints
            .Where(e => e.Metadata.GetMetadata<IAuthorizeData>() is null && e.Metadata.GetMetadata<IAllowAnonymous>() is null)
            .Select(e => $"'{e.DisplayName}'")
            .ToList();
        if (open.Count > 0)
        {
            throw new InvalidOperationException(
                "Oncely: the operator API is mapped without authorization: " + string.Join(", ", open) + ". It lists every tenant's records, "
                + "reads the key-reuse audit and releases records (after which a retry runs the operation again), so secure it: "
                + "app.MapIdempotencyAdmin(\"/admin/idempotency\").RequireAuthorization(\"operator\") with a policy only operators satisfy. "
                + "For a tool that is reachable only locally, opt out explicitly with .AllowAnonymous().");
        }

        var policies = services.GetService<IAuthorizationPolicyProvider>();
        var admitsAnyone = new List<string>();
        foreach (var endpoint in endpoints)
        {
            if (endpoint.Metadata.GetMetadata<IAllowAnonymous>() is null
                && endpoint.Metadata.GetMetadata<IdempotencyAdminAnyAuthenticatedCallerMetadata>() is null
                && WhyAnyAuthenticatedCallerGetsIn(endpoint, policies) is { } why)
            {
                admitsAnyone.Add($"'{endpoint.DisplayName}' ({why})");
            }
        }

        if (admitsAnyone.Count > 0)
        {
            throw new InvalidOperationException(
                "Oncely: the operator API lets any authenticated caller in: " + string.Join(", ", admitsAnyone) + ". "
                + "Any signed-in customer could then list every tenant's records, read the key-reuse audit and release records (after which a retry runs the operation again). "
                + "Require a named policy or a role that only operators satisfy: "
                + "builder.Services.AddAuthorizationBuilder().AddPolicy(\"operator\", p => p.RequireRole(\"operator\")) and "
                + "app.MapIdempotencyAdmin(\"/admin/idempotency\").RequireAuthorization(\"operator\"), or .RequireAuthorization(new AuthorizeAttribute { Roles = \"operator\" }). "
                + "The default policy and the fallback policy do not count: every customer endpoint uses them. "
                + "If every identity this application accepts really is an operator, say so with .AllowAnyAuthenticatedCallerAsOperator() (see docs/operator-api.md).");
        }

        // Not fatal: idempotency itself works; only the operator tool cannot, and its endpoints answer 501 saying why.
        var store = services.GetRequiredService<IIdempotencyStore>();
        if (store is not IIdempotencyStoreAdministration)
        {
            LogAdministrationNotSupported(services.GetRequiredService<ILoggerFactory>().CreateLogger(AdminLogCategory), store.GetType().Name);
        }
    }

    /// <summary>
    /// Why an operator API endpoint's authorization admits every authenticated caller, or null when something in it only
    /// operators can satisfy: a role, or a policy (named, or given as an object or requirements) with a requirement beyond
    /// "authenticated user". A bare <c>RequireAuthorization()</c> (the default policy) and a policy that only restricts
    /// the authentication scheme do not count: they are what every customer endpoint requires. Read the way
    /// <c>AuthorizationPolicy.CombineAsync</c> combines the endpoint's metadata.
    /// </summary>
    private static string? WhyAnyAuthenticatedCallerGetsIn(Endpoint endpoint, IAuthorizationPolicyProvider? policies)
    {
        var reasons = new List<string>();
        foreach (var data in endpoint.Metadata.GetOrderedMetadata<IAuthorizeData>())
        {
            if (data.Roles?.Split(',').Any(r => !string.IsNullOrWhiteSpace(r)) == true)
            {
                return null;
            }

            if (string.IsNullOrWhiteSpace(data.Policy))
            {
                reasons.Add("RequireAuthorization() without a policy or role uses the default policy");
                continue;
            }

            // Start-up, outside any request: the policy providers answer synchronously (the default one always does).
            var named = policies?.GetPolicyAsync(data.Policy).GetAwaiter().GetResult();
            if (named is null)
            {
                reasons.Add($"the policy '{data.Policy}' is not registered");
            }
            else if (RequiresMoreThanAuthentication(named.Requirements))
            {
                return null;
            }
            else
            {
                reasons.Add($"the policy '{data.Policy}' only requires an authenticated user");
            }
        }

        foreach (var policy in endpoint.Metadata.GetOrderedMetadata<AuthorizationPolicy>())
        {
            if (RequiresMoreThanAuthentication(policy.Requirements))
            {
                return null;
            }

            reasons.Add("a policy that only requires an authenticated user");
        }

        foreach (var data in endpoint.Metadata.GetOrderedMetadata<IAuthorizationRequirementData>())
        {
            if (RequiresMoreThanAuthentication([.. data.GetRequirements()]))
            {
                return null;
            }
        }

        return reasons.Count == 0 ? "nothing in its authorization requires more than an authenticated user" : string.Join("; ", reasons.Distinct(StringComparer.Ordinal));
    }

    private static bool RequiresMoreThanAuthentication(IReadOnlyList<IAuthorizationRequirement> requirements)
        => requirements.Any(r => r is not DenyAnonymousAuthorizationRequirement);

    /// <summary>The log category of the operator API.</summary>
    internal const string AdminLogCategory = "Oncely.AspNetCore.IdempotencyAdmin";
}
