using MassTransit;

namespace Oncely.MassTransit;

/// <summary>
/// Connected to an endpoint (or the bus, for every endpoint): puts the idempotent filter in front of each consumer's
/// and each handler's message pipe, named after the consumer (or the message type for a handler) and, per delivery, the
/// endpoint's queue. A batch consumer (<c>IConsumer&lt;Batch&lt;T&gt;&gt;</c>) gets a specification that refuses the
/// configuration when the bus is built (<see cref="IdempotentBatchConsumerRefusal{TBatch}"/>).
/// </summary>
internal sealed class IdempotentConsumerConfigurationObserver(IdempotentConsumerServices shared) : IConsumerConfigurationObserver, IHandlerConfigurationObserver
{
    public void ConsumerConfigured<TConsumer>(IConsumerConfigurator<TConsumer> configurator)
        where TConsumer : class
    {
    }

    public void ConsumerMessageConfigured<TConsumer, TMessage>(IConsumerMessageConfigurator<TConsumer, TMessage> configurator)
        where TConsumer : class
        where TMessage : class
    {
        if (IdempotentBatchConsumerRefusal.IsBatch(typeof(TMessage)))
        {
            configurator.Message(message => message.AddPipeSpecification(new IdempotentBatchConsumerRefusal<TMessage>(typeof(TConsumer))));
            return;
        }

        var name = shared.Options.OperationName(typeof(TConsumer));
        configurator.Message(message => message.AddPipeSpecification(new IdempotentConsumeSpecification<TMessage>(shared, name, reportReplayAsConsumed: false)));
    }

    public void HandlerConfigured<TMessage>(IHandlerConfigurator<TMessage> configurator)
        where TMessage : class
        => configurator.AddPipeSpecification(new IdempotentConsumeSpecification<TMessage>(shared, shared.Options.OperationName(typeof(TMessage)), reportReplayAsConsumed: true));
}
