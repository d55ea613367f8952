using System.Diagnostics.CodeAnalysis;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Oncely;
using Oncely.AspNetCore;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Maps Oncely's operator API.</summary>
public static class IdempotencyAdminEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps the operator API under <paramref name="prefix"/> and returns its route group, for the application to secure
    /// (<c>.RequireAuthorization("operator")</c>):
    /// <list type="bullet">
    /// <item><c>GET {prefix}/records</c>: live records, newest first, filtered by <c>tenant</c>, <c>operation</c>,
    /// <c>state</c>, <c>olderThan</c> / <c>createdBefore</c>, paged by <c>limit</c> (default 50, at most 500) and
    /// <c>continuation</c>; with <c>tenant</c> and <c>key</c>, the records of that key under every operation.</item>
    /// <item><c>GET {prefix}/records/detail?tenant=&amp;operation=&amp;key=</c>: one record as listed, with its stored
    /// answer when Completed: status, headers in order (decrypted for the operator when protected; card numbers masked)
    /// and the body's length; the body itself only when <see cref="IdempotencyAdminOptions.ShowStoredBodies"/> is on
    /// (<c>404</c> when there is no live record).</item>
    /// <item><c>POST {prefix}/records/release</c> with <c>{"tenant","operation","key","fencingToken"}</c>: releases a
    /// stuck InProgress record only if it still carries that fencing token (<c>204</c>; <c>409</c> when it changed or is
    /// Completed; <c>404</c> when gone), logged as a warning and counted (<c>oncely.admin.releases</c>).</item>
    /// <item><c>POST {prefix}/records/erase-tenant</c> with <c>{"tenant"}</c> and <c>POST {prefix}/records/erase-key</c>
    /// with <c>{"tenant","key"}</c>: erase what the store holds for a tenant or one of its keys, except records in progress
    /// (<c>200</c> with the counts; <c>409</c> naming the records in progress that were kept; <c>404</c> when nothing was
    /// held), audited and logged (see <see cref="IdempotencyEraser"/>).</item>
    /// <item><c>GET {prefix}/audit</c>: the key-reuse audit, newest first, filtered by <c>tenant</c>, <c>operation</c>,
    /// <c>key</c> and paged likewise.</item>
    /// </list>
    /// Times are ISO-8601 UTC; stored bodies are returned only when the application opts in. See <c>docs/operator-api.md</c>.
    /// </summary>
    /// <remarks>
    /// The host refuses to start when an operator API endpoint has neither authorization metadata nor an explicit
    /// <c>AllowAnonymous()</c> (releasing a record makes a retry run the operation again, and the audit holds payloads),
    /// when its authorization lets any authenticated caller in (a bare <c>RequireAuthorization()</c>, the default or
    /// fallback policy, a policy that only requires an authenticated user: secure it with a named policy or a role that
    /// only operators satisfy, or opt in with <see cref="AllowAnyAuthenticatedCallerAsOperator"/>), or when one is made
    /// idempotent by a group convention. When the store does not implement
    /// <see cref="IIdempotencyStoreAdministration"/> (every store shipped with Oncely does; a decorator may not), a warning
    /// is logged at start-up and the endpoints answer <c>501</c>. These endpoints are never idempotent themselves.
    /// </remarks>
    /// <param name="endpoints">The application (or a route group) to map into.</param>
    /// <param name="prefix">The route prefix. Default: <c>/admin/idempotency</c>.</param>
    /// <param name="configure">Changes <see cref="IdempotencyAdminOptions"/> (whether a record's detail shows the stored body). Default: none.</param>
    /// <returns>The route group of the operator API, to add authorization (and anything else) to.</returns>
    /// <exception cref="InvalidOperationException"><c>AddIdempotency()</c> was not called.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="IdempotencyAdminOptions.StoredBodyDisplayLimit"/> is out of range.</exception>
    public static RouteGroupBuilder MapIdempotencyAdmin(
        this IEndpointRouteBuilder endpoints,
        [StringSyntax("Route")] string prefix = "/admin/idempotency",
        Action<IdempotencyAdminOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrWhiteSpace(prefix);
        var options = new IdempotencyAdminOptions();
        configure?.Invoke(options);
        if (options.StoredBodyDisplayLimit is < 1 or > IdempotencyAdminOptions.MaxStoredBodyDisplayLimit)
        {
            throw new ArgumentOutOfRangeException(nameof(configure), options.StoredBodyDisplayLimit,
                $"IdempotencyAdminOptions.StoredBodyDisplayLimit is {options.StoredBodyDisplayLimit}: give a number of characters from 1 to {IdempotencyAdminOptions.MaxStoredBodyDisplayLimit}.");
        }

        if (endpoints.ServiceProvider.GetService<IdempotencyExecutor>() is null)
        {
            throw new InvalidOperationException("MapIdempotencyAdmin() needs the idempotency services: call builder.Services.AddIdempotency() first.");
        }

        var handlers = new IdempotencyAdminEndpoints(endpoints.ServiceProvider, options);
        var group = endpoints.MapGroup(prefix);
        group.WithMetadata(IdempotencyAdminEndpointMetadata.Instance);
        group.MapGet("/records", handlers.ListRecordsAsync).WithDisplayName($"Oncely operator API: list records ({prefix})");
        group.MapGet("/records/detail", handlers.GetRecordAsync).WithDisplayName($"Oncely operator API: one record with its stored answer ({prefix})");
        group.MapPost("/records/release", handlers.ReleaseAsync).WithDisplayName($"Oncely operator API: release a record ({prefix})");
        group.MapPost("/records/erase-tenant", handlers.EraseTenantAsync).WithDisplayName($"Oncely operator API: erase a tenant's records ({prefix})");
        group.MapPost("/records/erase-key", handlers.EraseKeyAsync).WithDisplayName($"Oncely operator API: erase a key's records ({prefix})");
        group.MapGet("/audit", handlers.ListAuditAsync).WithDisplayName($"Oncely operator API: key-reuse audit ({prefix})");
        return group;
    }

    /// <summary>
    /// DANGEROUS: lets every authenticated caller of the application use the operator API mapped into
    /// <paramref name="group"/> — list every tenant's records, read the key-reuse audit (with its payloads) and release
    /// records, after which a retry runs the operation again. Without this call the host refuses to start when the
    /// operator API's authorization admits any authenticated caller (a bare <c>RequireAuthorization()</c>, a policy that
    /// only requires an authenticated user). Use it only when every identity the application accepts is an operator's
    /// (an internal tool behind its own sign-in); otherwise require a named policy or a role that only operators satisfy
    /// (<c>.RequireAuthorization("operator")</c>). It adds no authorization itself: the group still needs
    /// <c>RequireAuthorization(...)</c>. Default: not called (such a group is refused at start-up).
    /// </summary>
    /// <param name="group">The group <see cref="MapIdempotencyAdmin"/> returned, or a group it was mapped into.</param>
    /// <returns><paramref name="group"/>.</returns>
    public static RouteGroupBuilder AllowAnyAuthenticatedCallerAsOperator(this RouteGroupBuilder group)
    {
        ArgumentNullException.ThrowIfNull(group);
        group.WithMetadata(IdempotencyAdminAnyAuthenticatedCallerMetadata.Instance);
        return group;
    }
}
