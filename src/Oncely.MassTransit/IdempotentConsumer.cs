using System.Data.Common;
using MassTransit;

namespace Oncely.MassTransit;

/// <summary>Helpers for consumers that run behind <c>UseIdempotentConsumers</c>.</summary>
public static class IdempotentConsumer
{
    /// <summary>
    /// What the record of a consumed message stores: status 0, no headers, no body (a message has no answer to replay;
    /// a redelivery is simply acknowledged). Pass it to <see cref="IdempotencyExecution.CompleteInTransactionAsync"/> or
    /// EF Core's <c>StageCompletionAsync</c>.
    /// </summary>
    public static IdempotentResponse ConsumedResponse { get; } = new(0, [], ReadOnlyMemory<byte>.Empty);

    /// <summary>
    /// Writes the completion of this delivery's record inside <paramref name="transaction"/>, so the consumer's business
    /// writes and the record commit together or not at all: a crash after the commit (before the broker got the
    /// acknowledgement) finds the record Completed on redelivery and acknowledges without running again. Call it just
    /// before committing. Does nothing when the consumer does not run behind <c>UseIdempotentConsumers</c>.
    /// </summary>
    /// <param name="context">The consume context the consumer received.</param>
    /// <param name="transaction">
    /// The consumer's open transaction, on the store's database, of the store's driver (<c>SqliteTransaction</c>,
    /// <c>NpgsqlTransaction</c>).
    /// </param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes once the completion is written into the transaction.</returns>
    /// <exception cref="IdempotencyLeaseLostException">Another delivery took the record over: roll back.</exception>
    /// <exception cref="InvalidOperationException">The store cannot write inside <paramref name="transaction"/>; the message says why.</exception>
    public static ValueTask CompleteIdempotencyInTransactionAsync(this ConsumeContext context, DbTransaction transaction, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(transaction);
        return context.GetIdempotencyExecution() is { } execution
            ? execution.CompleteInTransactionAsync(transaction, ConsumedResponse, cancellationToken)
            : ValueTask.CompletedTask;
    }
}
