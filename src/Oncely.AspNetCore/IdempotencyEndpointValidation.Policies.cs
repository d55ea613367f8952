using Microsoft.AspNetCore.Authorization;
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
    /// mapped unsecured or made idempotent by a group convention; warns when the store cannot serve the operator API.
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

            if (IdempotencyEndpointPlan.For(endpoint) is null || IdempotencyEndpointSettings.PolicyNameOf(endpoint) is not { } name)
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

        // Not fatal: idempotency itself works; only the operator tool cannot, and its endpoints answer 501 saying why.
        var store = services.GetRequiredService<IIdempotencyStore>();
        if (store is not IIdempotencyStoreAdministration)
        {
            LogAdministrationNotSupported(services.GetRequiredService<ILoggerFactory>().CreateLogger(AdminLogCategory), store.GetType().Name);
        }
    }

    /// <summary>The log category of the operator API.</summary>
    internal const string AdminLogCategory = "Oncely.AspNetCore.IdempotencyAdmin";

    [LoggerMessage(IdempotencyEventIds.AdministrationNotSupported, LogLevel.Warning,
        "The operator API (MapIdempotencyAdmin) is mapped, but the idempotency store {Store} does not implement IIdempotencyStoreAdministration, so its endpoints answer 501. " +
        "Every store shipped with Oncely implements it: if {Store} wraps one, pass the capability on (implement the interface by delegating to the inner store)")]
    private static partial void LogAdministrationNotSupported(ILogger logger, string store);
}
