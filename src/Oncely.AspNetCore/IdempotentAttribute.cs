using Microsoft.AspNetCore.Mvc.Filters;

namespace Oncely.AspNetCore;

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
    /// <see cref="IdempotencyEndpointConventionBuilderExtensions.WithIdempotencyKeyFromHeader{TBuilder}"/>).
    /// Default: <see langword="null"/> (<c>Idempotency-Key</c>, or its alias <c>X-Idempotency-Key</c>).
    /// </summary>
    public string? KeyHeader { get; set; }

    /// <summary>
    /// The JSON body member the key is read from: a member name (<c>id</c>) or a JSON pointer (<c>/data/id</c>) (see
    /// <see cref="IdempotencyEndpointConventionBuilderExtensions.WithIdempotencyKeyFromJsonBody{TBuilder}"/>).
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
