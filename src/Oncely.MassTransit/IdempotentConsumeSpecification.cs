using MassTransit;
using MassTransit.Configuration;

namespace Oncely.MassTransit;

/// <summary>Adds <see cref="IdempotentConsumeFilter{TMessage}"/> to a pipe.</summary>
internal sealed class IdempotentConsumeSpecification<TMessage>(IdempotentConsumerServices shared, string name, bool reportReplayAsConsumed) : IPipeSpecification<ConsumeContext<TMessage>>
    where TMessage : class
{
    public void Apply(IPipeBuilder<ConsumeContext<TMessage>> builder) => builder.AddFilter(new IdempotentConsumeFilter<TMessage>(shared, name, reportReplayAsConsumed));

    public IEnumerable<ValidationResult> Validate()
    {
        if (string.IsNullOrEmpty(name))
        {
            yield return this.Failure("Operation", $"The operation name of the idempotent consumer of {typeof(TMessage).Name} is empty: IdempotentConsumerOptions.OperationName must return a name.");
        }
    }
}
