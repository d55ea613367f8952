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
