using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc.Filters;

namespace Oncely.AspNetCore;

/// <summary>Endpoint metadata that makes an endpoint idempotent. Endpoints without it pass through untouched (row 1).</summary>
public interface IIdempotencyMetadata
{
    /// <summary>
    /// Whether a request without a key is refused with <c>400</c> (row 2) or passes through without a record (row 3).
    /// </summary>
    bool KeyRequired { get; }

    /// <summary>
    /// Whether unauthenticated callers are served, all in one shared anonymous scope. Default: <see langword="false"/>:
    /// an unauthenticated caller is refused with <c>401</c> before anything runs.
    /// </summary>
    bool AllowAnonymous => false;

    /// <summary>
    /// The operation name the endpoint's records are kept under, instead of the one derived from the method and route
    /// pattern. Default: <see langword="null"/> (derived).
    /// </summary>
    string? Operation => null;

    /// <summary>
    /// Whether the endpoint reserves its record itself, inside its own database transaction (one-commit mode: see
    /// <see cref="IdempotencyEndpointConventionBuilderExtensions.WithOneCommitReservation{TBuilder}"/>). Default:
    /// <see langword="false"/>: the middleware reserves, and commits the reservation, before the handler runs.
    /// </summary>
    bool OneCommitReservation => false;

    /// <summary>
    /// The request header the key is read from instead of <c>Idempotency-Key</c> (for example <c>webhook-id</c>). Default:
    /// <see langword="null"/> (<c>Idempotency-Key</c>, or its alias <c>X-Idempotency-Key</c>).
    /// </summary>
    string? KeyHeader => null;

    /// <summary>
    /// The JSON body member the key is read from instead of a header: a member name (<c>id</c>) or a JSON pointer
    /// (<c>/data/id</c>). Default: <see langword="null"/> (a header).
    /// </summary>
    string? KeyJsonMember => null;

    /// <summary>
    /// The named policy (<see cref="IdempotencyOptions.AddPolicy"/>) whose lease, expiration, body limits and status-code
    /// policy the endpoint uses. Default: <see langword="null"/>: the global <see cref="IdempotencyOptions"/>.
    /// </summary>
    string? Policy => null;
}

/// <summary>
/// Marks an MVC action or controller as idempotent. The key is required by default; set
/// <see cref="KeyRequired"/> to <see langword="false"/> to let requests without a key through unrecorded.
/// </summary>
/// <remarks>
/// It is also an MVC resource filter that refuses to run the action when the idempotency middleware did not handle the
/// request (for example <c>UseIdempotency()</c> placed before <c>UseRouting()</c>): the action never runs unprotected.
/// </remarks>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method, AllowMultiple = false, Inherited = true)]
public sealed class IdempotentAttribute : Attribute, IIdempotencyMetadata, IAsyncResourceFilter
{
    /// <summary>Whether a request without a key is refused with <c>400</c>. Default: <see langword="true"/>.</summary>
    public bool KeyRequired { get; set; } = true;

    /// <summary>
    /// Whether unauthenticated callers are served, all sharing one anonymous scope (any anonymous caller who sends the
    /// same key and payload receives the first caller's stored answer). Default: <see langword="false"/> (<c>401</c>).
    /// </summary>
    public bool AllowAnonymous { get; set; }

    /// <summary>
    /// The operation name the records are kept under. Default: <see langword="null"/>, derived from the method, the route
    /// pattern, the host constraint and the controller and action route values.
    /// </summary>
    public string? Operation { get; set; }

    /// <summary>
    /// One-commit mode: the middleware does not reserve before the action runs; the action reserves the record as the
    /// first statement of its own transaction (<see cref="IdempotencyExecution.ReserveInTransactionAsync"/>), completes
    /// it in that transaction (<see cref="IdempotencyExecution.CompleteInTransactionAsync"/>) and commits once. Needs a
    /// SQL store on the action's database. Not for actions that call other systems inside their transaction. Default:
    /// <see langword="false"/> (the middleware reserves and commits the reservation first).
    /// </summary>
    public bool OneCommitReservation { get; set; }

    /// <summary>
    /// The request header the key is read from instead of <c>Idempotency-Key</c>, for example <c>webhook-id</c> (see
    /// <see cref="IdempotencyKeySourceEndpointConventionBuilderExtensions.WithIdempotencyKeyFromHeader{TBuilder}"/>).
    /// Default: <see langword="null"/> (<c>Idempotency-Key</c>, or its alias <c>X-Idempotency-Key</c>).
    /// </summary>
    public string? KeyHeader { get; set; }

    /// <summary>
    /// The JSON body member the key is read from: a member name (<c>id</c>) or a JSON pointer (<c>/data/id</c>) (see
    /// <see cref="IdempotencyKeySourceEndpointConventionBuilderExtensions.WithIdempotencyKeyFromJsonBody{TBuilder}"/>).
    /// Setting it together with <see cref="KeyHeader"/> stops the application at start-up. Default: <see langword="null"/>
    /// (a header).
    /// </summary>
    public string? KeyJsonMember { get; set; }

    /// <summary>
    /// The named policy (<see cref="IdempotencyOptions.AddPolicy"/>, or <c>Oncely:Policies:{name}</c> in configuration)
    /// whose lease, expiration, body limits and status-code policy the action uses; a name that is not registered stops
    /// the host at start-up. Default: <see langword="null"/>: the global <see cref="IdempotencyOptions"/>.
    /// </summary>
    public string? Policy { get; set; }

    /// <inheritdoc />
    public Task OnResourceExecutionAsync(ResourceExecutingContext context, ResourceExecutionDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        IdempotencyEndpointGuard.EnsureHandled(context.HttpContext);
        return next();
    }
}

/// <summary>Minimal-API conventions that mark endpoints idempotent.</summary>
public static class IdempotencyEndpointConventionBuilderExtensions
{
    /// <summary>
    /// Makes the endpoint idempotent and refuses requests without an <c>Idempotency-Key</c> with <c>400</c>.
    /// Unauthenticated callers are refused with <c>401</c> unless <see cref="AllowAnonymousIdempotency{TBuilder}"/> is added.
    /// The endpoint refuses to run if the idempotency middleware did not handle the request.
    /// </summary>
    /// <typeparam name="TBuilder">The endpoint builder type.</typeparam>
    /// <param name="builder">The endpoint.</param>
    /// <returns>The same builder.</returns>
    public static TBuilder RequireIdempotencyKey<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.WithMetadata(new IdempotentAttribute { KeyRequired = true }).GuardedByIdempotencyMiddleware();
    }

    /// <summary>
    /// Makes the endpoint idempotent when the caller sends an <c>Idempotency-Key</c>; requests without one pass through
    /// and are not recorded.
    /// </summary>
    /// <typeparam name="TBuilder">The endpoint builder type.</typeparam>
    /// <param name="builder">The endpoint.</param>
    /// <returns>The same builder.</returns>
    public static TBuilder AllowIdempotencyKey<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.WithMetadata(new IdempotentAttribute { KeyRequired = false }).GuardedByIdempotencyMiddleware();
    }

    /// <summary>
    /// Lets unauthenticated callers use the idempotent endpoint. They all share one anonymous scope, which no real
    /// tenant id can equal: any anonymous caller who sends the same key and payload receives the first anonymous caller's
    /// stored answer. Use it only for endpoints whose answers are not private (a public sign-up form, a contact form).
    /// </summary>
    /// <typeparam name="TBuilder">The endpoint builder type.</typeparam>
    /// <param name="builder">The endpoint.</param>
    /// <returns>The same builder.</returns>
    public static TBuilder AllowAnonymousIdempotency<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.WithMetadata(AnonymousIdempotencyScopeMetadata.Instance);
    }

    /// <summary>
    /// Keeps the endpoint's records under <paramref name="operation"/> instead of the name derived from its method and
    /// route pattern: for two endpoints that the derived name cannot tell apart, or to keep records valid across a
    /// route rename.
    /// </summary>
    /// <typeparam name="TBuilder">The endpoint builder type.</typeparam>
    /// <param name="builder">The endpoint.</param>
    /// <param name="operation">The operation name, for example <c>payments.create</c>.</param>
    /// <returns>The same builder.</returns>
    public static TBuilder WithIdempotencyOperation<TBuilder>(this TBuilder builder, string operation)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(operation);
        return builder.WithMetadata(new IdempotencyOperationMetadata(operation));
    }

    /// <summary>
    /// One-commit mode, for an endpoint already made idempotent (<see cref="RequireIdempotencyKey{TBuilder}"/> or
    /// <see cref="AllowIdempotencyKey{TBuilder}"/>): the middleware does not reserve before the handler runs. It reads the
    /// record (a Completed record replays, another payload is refused) and otherwise runs the handler, which reserves the
    /// record as the first statement of its own transaction (<see cref="IdempotencyExecution.ReserveInTransactionAsync"/>),
    /// does its writes, completes the record in the same transaction
    /// (<see cref="IdempotencyExecution.CompleteInTransactionAsync"/>) and commits: one commit per operation. A duplicate
    /// waits for the first one's transaction (at most <see cref="IdempotencyEngineOptions.ReservationLockTimeout"/>) and
    /// replays its answer. Needs a SQL store on the handler's database; not for handlers that call other systems inside
    /// the transaction (the key stays locked across the call). Default (without this call): the middleware reserves and
    /// commits the reservation before the handler runs.
    /// </summary>
    /// <typeparam name="TBuilder">The endpoint builder type.</typeparam>
    /// <param name="builder">The endpoint.</param>
    /// <returns>The same builder.</returns>
    public static TBuilder WithOneCommitReservation<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.WithMetadata(OneCommitReservationMetadata.Instance);
    }

    private static TBuilder GuardedByIdempotencyMiddleware<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        // Runs after the framework has built the endpoint's request delegate.
        builder.Finally(static endpoint =>
        {
            if (endpoint.RequestDelegate is { } inner && !endpoint.Metadata.Contains(IdempotencyEndpointGuard.Marker))
            {
                endpoint.Metadata.Add(IdempotencyEndpointGuard.Marker);
                endpoint.RequestDelegate = context =>
                {
                    IdempotencyEndpointGuard.EnsureHandled(context);
                    return inner(context);
                };
            }
        });
        return builder;
    }
}

/// <summary>
/// Set on <see cref="HttpContext.Features"/> while an idempotent operation runs, so the handler can see its key, commit
/// recovery points and derive downstream keys.
/// </summary>
public interface IIdempotencyFeature
{
    /// <summary>The lease this request holds.</summary>
    IdempotencyExecution Execution { get; }
}

internal sealed class IdempotencyFeature(IdempotencyExecution execution) : IIdempotencyFeature
{
    public IdempotencyExecution Execution { get; } = execution;
}

/// <summary>Reads the idempotency feature from a request.</summary>
public static class IdempotencyHttpContextExtensions
{
    /// <summary>The running idempotent operation's lease, or <see langword="null"/> when the request is not idempotent.</summary>
    /// <param name="context">The request.</param>
    /// <returns>The lease, or <see langword="null"/>.</returns>
    public static IdempotencyExecution? GetIdempotencyExecution(this HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.Features.Get<IIdempotencyFeature>()?.Execution;
    }
}

internal sealed class AnonymousIdempotencyScopeMetadata
{
    public static readonly AnonymousIdempotencyScopeMetadata Instance = new();
}

internal sealed class OneCommitReservationMetadata
{
    public static readonly OneCommitReservationMetadata Instance = new();
}

internal sealed class IdempotencyOperationMetadata(string operation)
{
    public string Operation { get; } = operation;
}

/// <summary>
/// Makes an idempotent endpoint fail closed when the idempotency middleware did not handle its request, the way
/// ASP.NET Core refuses an endpoint with authorization metadata when the authorization middleware did not run.
/// </summary>
internal static class IdempotencyEndpointGuard
{
    public static readonly object Marker = new GuardMarker();

    public static void MarkHandled(HttpContext context) => context.Features.Set(HandledFeature.Instance);

    public static void EnsureHandled(HttpContext context)
    {
        if (context.Features.Get<HandledFeature>() is null)
        {
            throw new InvalidOperationException(
                $"Endpoint {context.GetEndpoint()?.DisplayName} is idempotent, but the idempotency middleware did not handle the request, so it was refused " +
                "rather than run unprotected. Call app.UseIdempotency() after app.UseRouting() (and after UseAuthentication/UseAuthorization), " +
                "or, when UseRouting() is not called explicitly, anywhere before the endpoints are mapped.");
        }
    }

    private sealed class GuardMarker;

    private sealed class HandledFeature
    {
        public static readonly HandledFeature Instance = new();
    }
}
