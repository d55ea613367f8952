using MassTransit;
using MassTransit.Configuration;

namespace Oncely.MassTransit;

/// <summary>
/// Put in a batch consumer's (<c>IConsumer&lt;Batch&lt;T&gt;&gt;</c>) message pipe instead of the idempotent filter: fails
/// the bus configuration's validation, so the bus refuses to start, naming the consumer and what to do instead.
/// </summary>
/// <remarks>
/// A batch is one delivery to the consumer but many to the broker, and MassTransit 8.5 acknowledges or faults them
/// together. A smaller batch without the messages already consumed could be built (<c>MessageBatch&lt;T&gt;</c>), but
/// no message of a batch can have its own outcome: a re-used key's message must go to <c>_error</c> alone, and faulting
/// the batch would send its neighbours (which ran and committed) there too, while acknowledging it would drop the
/// refused message silently. One duplicate in progress elsewhere would also hold the whole batch. So the configuration
/// is refused rather than every batch faulting (or running unguarded).
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
            + "a batch is acknowledged or faulted as a whole, so one message whose key was re-used (which must go to _error alone) or whose duplicate is in progress would decide the fate of every message in the batch. "
            + $"Nothing was started. Consume {element} one message at a time (IConsumer<{element}>, optionally with a higher ConcurrentMessageLimit) behind the filter; "
            + $"or call UseIdempotentConsumers on the receive endpoints of the other consumers only (not on the bus, nor on this consumer's endpoint) and guard each message of the batch yourself "
            + "with an IdempotencyExecutor, one record per message id (docs/messages.md, \"Batch consumers\").";
    }
}
