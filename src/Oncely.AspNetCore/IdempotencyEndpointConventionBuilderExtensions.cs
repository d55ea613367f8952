using Microsoft.AspNetCore.Builder;

namespace Oncely.AspNetCore;

/// <summary>
/// Minimal-API conventions that mark endpoints idempotent: with a required or optional key, under a named policy, with the
/// key read from somewhere other than the <c>Idempotency-Key</c> header (for webhook deliveries and queue-like callers
/// whose operation already has an id), with the shared anonymous scope, an explicit operation name or one-commit mode.
/// A key from another source obeys the same rules as an <c>Idempotency-Key</c> (at most
/// <see cref="IdempotencyEngineOptions.MaxKeyLength"/> visible ASCII characters, one value): a missing key is answered
/// <c>400 idempotency-key-missing</c> (or passes through unrecorded when the key is optional), an invalid one
/// <c>400 idempotency-key-invalid</c>; the last source set wins.
/// </summary>
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
    /// One-commit mode, for an endpoint already made idempotent (<see cref="RequireIdempotencyKey{TBuilder}(TBuilder)"/> or
    /// <see cref="AllowIdempotencyKey{TBuilder}(TBuilder)"/>): the middleware does not reserve before the handler runs. It reads the
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

    /// <summary>
    /// Makes the endpoint idempotent, refusing requests without an <c>Idempotency-Key</c> with <c>400</c> (as
    /// <see cref="RequireIdempotencyKey{TBuilder}(TBuilder)"/>), with the
    /// lease, expiration, body limits and status-code policy of the named policy <paramref name="policyName"/>.
    /// </summary>
    /// <typeparam name="TBuilder">The endpoint builder type.</typeparam>
    /// <param name="builder">The endpoint (or a route group).</param>
    /// <param name="policyName">A policy added with <see cref="IdempotencyOptions.AddPolicy"/> or bound from configuration; an unknown name stops the host at start-up.</param>
    /// <returns>The same builder.</returns>
    public static TBuilder RequireIdempotencyKey<TBuilder>(this TBuilder builder, string policyName)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(policyName);
        return builder.RequireIdempotencyKey().WithMetadata(new IdempotencyPolicyMetadata(policyName));
    }

    /// <summary>
    /// Makes the endpoint idempotent when the caller sends an <c>Idempotency-Key</c> (as
    /// <see cref="AllowIdempotencyKey{TBuilder}(TBuilder)"/>), with the
    /// settings of the named policy <paramref name="policyName"/>.
    /// </summary>
    /// <typeparam name="TBuilder">The endpoint builder type.</typeparam>
    /// <param name="builder">The endpoint (or a route group).</param>
    /// <param name="policyName">A policy added with <see cref="IdempotencyOptions.AddPolicy"/> or bound from configuration; an unknown name stops the host at start-up.</param>
    /// <returns>The same builder.</returns>
    public static TBuilder AllowIdempotencyKey<TBuilder>(this TBuilder builder, string policyName)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(policyName);
        return builder.AllowIdempotencyKey().WithMetadata(new IdempotencyPolicyMetadata(policyName));
    }

    /// <summary>
    /// Reads the key from the request header <paramref name="headerName"/> (for example <c>webhook-id</c>) instead of
    /// <c>Idempotency-Key</c>. The header must be sent once, with one value; <c>X-Idempotency-Key</c> is not read. Default
    /// (without this call): <c>Idempotency-Key</c>, or its alias <c>X-Idempotency-Key</c>.
    /// </summary>
    /// <typeparam name="TBuilder">The endpoint builder type.</typeparam>
    /// <param name="builder">The endpoint.</param>
    /// <param name="headerName">The header that carries the key.</param>
    /// <returns>The same builder.</returns>
    public static TBuilder WithIdempotencyKeyFromHeader<TBuilder>(this TBuilder builder, string headerName)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.WithMetadata(new IdempotencyKeySourceMetadata(new HeaderKeySource(headerName)));
    }

    /// <summary>
    /// Reads the key from a string member of the JSON request body: a top-level member name (<c>id</c>) or an RFC 6901
    /// JSON pointer (<c>/data/id</c>; array indexes such as <c>/items/0/id</c> work). The body is read (up to
    /// <see cref="IdempotencyOptions.MaxRequestBodySize"/>) before the key. Member names are matched ignoring case, the
    /// way ASP.NET Core binds them, and a body with two members that match is refused (<c>400 idempotency-key-invalid</c>),
    /// as are a body that is not JSON and a member that is not a string; a missing member or <c>null</c> means no key.
    /// Default (without this call): the <c>Idempotency-Key</c> header.
    /// </summary>
    /// <typeparam name="TBuilder">The endpoint builder type.</typeparam>
    /// <param name="builder">The endpoint.</param>
    /// <param name="member">A member name or a JSON pointer.</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentException"><paramref name="member"/> is empty or not a well-formed JSON pointer.</exception>
    public static TBuilder WithIdempotencyKeyFromJsonBody<TBuilder>(this TBuilder builder, string member)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.WithMetadata(new IdempotencyKeySourceMetadata(new JsonMemberKeySource(member)));
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
