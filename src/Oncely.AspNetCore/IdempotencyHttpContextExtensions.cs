using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

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
