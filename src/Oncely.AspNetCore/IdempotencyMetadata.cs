using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>Endpoint metadata that makes an endpoint idempotent. Endpoints without it pass through untouched (row 1).</summary>
public interface IIdempotencyMetadata
{
    /// <summary>
    /// Whether a request without a key is refused with <c>400</c> (row 2) or passes through without a record (row 3).
    /// </summary>
    bool KeyRequired { get; }
}

/// <summary>
/// Marks an MVC action or controller as idempotent. The key is required by default; set
/// <see cref="KeyRequired"/> to <see langword="false"/> to let requests without a key through unrecorded.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method, AllowMultiple = false, Inherited = true)]
public sealed class IdempotentAttribute : Attribute, IIdempotencyMetadata
{
    /// <summary>Whether a request without a key is refused with <c>400</c>. Default: <see langword="true"/>.</summary>
    public bool KeyRequired { get; set; } = true;
}

/// <summary>Minimal-API conventions that mark endpoints idempotent.</summary>
public static class IdempotencyEndpointConventionBuilderExtensions
{
    /// <summary>
    /// Makes the endpoint idempotent and refuses requests without an <c>Idempotency-Key</c> with <c>400</c>.
    /// </summary>
    /// <typeparam name="TBuilder">The endpoint builder type.</typeparam>
    /// <param name="builder">The endpoint.</param>
    /// <returns>The same builder.</returns>
    public static TBuilder RequireIdempotencyKey<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.WithMetadata(new IdempotentAttribute { KeyRequired = true });
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
        return builder.WithMetadata(new IdempotentAttribute { KeyRequired = false });
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
