using MassTransit;

namespace Oncely.MassTransit;

/// <summary>Reaches the idempotent execution from inside a consumer.</summary>
public static class ConsumeContextIdempotencyExtensions
{
    /// <summary>
    /// The lease this delivery holds on its record while the consumer runs: complete it inside the consumer's own
    /// database transaction (<see cref="IdempotencyExecution.CompleteInTransactionAsync"/>, or EF Core's
    /// <c>StageCompletionAsync</c>) so the business write and the record's completion commit together; use
    /// <see cref="IdempotencyExecution.RecoveryPoint"/> and <see cref="IdempotencyExecution.DeriveKey(string)"/> for multi-step
    /// work.
    /// </summary>
    /// <param name="context">The consume context the consumer received.</param>
    /// <returns>The execution, or <see langword="null"/> when the consumer does not run behind <c>UseIdempotentConsumers</c>.</returns>
    public static IdempotencyExecution? GetIdempotencyExecution(this ConsumeContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.TryGetPayload<IdempotencyExecution>(out var execution) ? execution : null;
    }
}
