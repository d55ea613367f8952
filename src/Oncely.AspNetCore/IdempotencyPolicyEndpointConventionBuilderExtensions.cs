using Microsoft.AspNetCore.Builder;

namespace Oncely.AspNetCore;

/// <summary>Minimal-API conventions that make endpoints idempotent under a named policy.</summary>
public static class IdempotencyPolicyEndpointConventionBuilderExtensions
{
    /// <summary>
    /// Makes the endpoint idempotent, refusing requests without an <c>Idempotency-Key</c> with <c>400</c> (as
    /// <see cref="IdempotencyEndpointConventionBuilderExtensions.RequireIdempotencyKey{TBuilder}(TBuilder)"/>), with the
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
    /// <see cref="IdempotencyEndpointConventionBuilderExtensions.AllowIdempotencyKey{TBuilder}(TBuilder)"/>), with the
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
}

/// <summary>The named policy an endpoint asks for (added by the policy overloads of the conventions).</summary>
internal sealed class IdempotencyPolicyMetadata(string policyName)
{
    public string PolicyName { get; } = policyName;
}
