namespace Oncely.MassTransit.Tests;

/// <summary>The operation of a consumer's records: its name and its endpoint's queue, nothing else of the address.</summary>
public sealed class ConsumerOperationTests
{
    [Theory]
    [InlineData("rabbitmq://127.0.0.1:5672/payouts")]
    [InlineData("rabbitmq://broker.internal:5671/prod/payouts")]
    [InlineData("rabbitmq://broker.internal/prod/payouts?prefetch=16")]
    [InlineData("loopback://localhost/payouts")]
    [InlineData("rabbitmq://broker.internal/prod/payouts/")]
    public void Of_AnyHostPortVirtualHostOrQuery_NamesTheQueueOnly(string address)
        => Assert.Equal("Payments.PayoutConsumer@payouts", ConsumerOperation.Of("Payments.PayoutConsumer", new Uri(address)));

    [Fact]
    public void Of_TwoQueues_TwoOperations()
        => Assert.NotEqual(
            ConsumerOperation.Of("Payments.PayoutConsumer", new Uri("rabbitmq://localhost/payouts")),
            ConsumerOperation.Of("Payments.PayoutConsumer", new Uri("rabbitmq://localhost/payouts-audit")));

    [Fact]
    public void Of_EscapedQueueName_Unescaped()
        => Assert.Equal("handler:urn:message:Ns:Transfer@pay outs", ConsumerOperation.Of("handler:urn:message:Ns:Transfer", new Uri("rabbitmq://localhost/pay%20outs")));

    [Fact]
    public void Of_NoAddress_TheNameAlone()
        => Assert.Equal("Payments.PayoutConsumer", ConsumerOperation.Of("Payments.PayoutConsumer", null));
}
