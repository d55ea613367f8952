using MassTransit;
using MassTransit.Configuration;

namespace Oncely.MassTransit;

/// <summary>
/// Put in a batch consumer's (<c>IConsumer&lt;Batch&lt;T&gt;&gt;</c>) message pipe instead of the idempotent filter: fails
/// the bus configuration's validation, so the bus refuses to start, naming the consumer and what to do instead.
/// </summary>
/// <remarks>
/// A batch is one delivery to the consumer but many to the broker, acknowledged or faulted as a whole. Guarding each of
/// its messages by its own key would mean running the consumer on a batch without the messages already consumed (a
/// <c>Batch&lt;T&gt;</c> MassTransit 8 offers no public way to build), acknowledging a re-used key's message without
/// sending it to <c>_error</c> or sending its innocent neighbours there with it, and holding the whole batch for one
/// duplicate in progress elsewhere; and its records could not complete in the consumer's one transaction. None of that is
/// safe for money, so the configuration is refused rather than every batch faulting (or, worse, running unguarded).
/// </remarks>
/// <typeparam name="TBatch">The closed <c>Batch&lt;T&gt;</c> type.</typeparam>
/// <param name="consumerType">The batch consumer.</param>
internal sealed class IdempotentBatchConsumerRefusal<TBatch>(Type consumerType) : IPipeSpecification<ConsumeContext<TBatch>>
    where TBatch : class
{
    public void Apply(IPipeBuilder<ConsumeContext<TBatch>> builder) => throw new ConfigurationException(IdempotentBatchConsumerRefusal.Explain(consumerType, typeof(TBatch)));

    public IEnumerable<ValidationResult> Validate()
    {
        yield return this.Failure("UseIdempotentConsumers", IdempotentBatchConsumerRefusal.Explain(consumerType, typeof(TBatch)));
    }
}

/// <summary>Recognises batch consumers and says why they are refused.</summary>
internal static class IdempotentBatchConsumerRefusal
{
    /// <summary>Whether <paramref name="messageType"/> is a closed <c>Batch&lt;T&gt;</c>.</summary>
    /// <param name="messageType">The consumed message type.</param>
    /// <returns><see langword="true"/> for a batch.</returns>
    public static bool IsBatch(Type messageType) => messageType.IsGenericType && messageType.GetGenericTypeDefinition() == typeof(Batch<>);

    /// <summary>The refusal's text: which consumer, why, and what to do.</summary>
    /// <param name="consumerType">The batch consumer.</param>
    /// <param name="batchType">Its closed <c>Batch&lt;T&gt;</c>.</param>
    /// <returns>The message.</returns>
    public static string Explain(Type consumerType, Type batchType)
    {
        var element = batchType.GetGenericArguments()[0].Name;
        return $"Oncely.MassTransit: {consumerType.FullName ?? consumerType.Name} consumes Batch<{element}> behind UseIdempotentConsumers, which guards one message at a time and cannot guard a batch: "
            + $"a batch is acknowledged or faulted as a whole, so a message already consumed, a re-used key or a duplicate in progress would fail or acknowledge the rest of the batch with it. "
            + $"Nothing was started. Consume {element} one message at a time (IConsumer<{element}>, optionally with a higher ConcurrentMessageLimit) behind the filter; "
            + $"or call UseIdempotentConsumers on the receive endpoints of the other consumers only (not on the bus, nor on this consumer's endpoint) and guard each message of the batch yourself "
            + "with an IdempotencyExecutor, one record per message id (docs/messages.md, \"Batch consumers\").";
    }
}
