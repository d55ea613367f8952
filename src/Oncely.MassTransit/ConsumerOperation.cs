namespace Oncely.MassTransit;

/// <summary>
/// The operation of a consumer's (or handler's) record: its name (<see cref="IdempotentConsumerOptions.OperationName"/>)
/// and the queue of the receive endpoint the delivery came from, as <c>Payments.PayoutConsumer@payouts</c>. A message
/// published to two endpoints is therefore two operations, each run once; every instance that consumes one queue shares
/// its operation, whatever host name or port it reached the broker by (only the queue is taken from the address).
/// </summary>
internal static class ConsumerOperation
{
    /// <summary>Between the consumer's name and its endpoint's queue.</summary>
    public const string Separator = "@";

    /// <summary>The operation of <paramref name="name"/> consuming from <paramref name="inputAddress"/>.</summary>
    /// <param name="name">The consumer's (or handler's) name.</param>
    /// <param name="inputAddress">The receive endpoint's input address; without one, the name alone.</param>
    /// <returns>The operation.</returns>
    public static string Of(string name, Uri? inputAddress)
        => QueueOf(inputAddress) is { } queue ? string.Concat(name, Separator, queue) : name;

    /// <summary>
    /// The last segment of the address's path: the queue (<c>rabbitmq://broker:5672/vhost/payouts?prefetch=4</c> →
    /// <c>payouts</c>), without scheme, host, port, virtual host or query, which may differ between instances of one consumer.
    /// </summary>
    /// <param name="inputAddress">The receive endpoint's input address.</param>
    /// <returns>The queue, or <see langword="null"/> when the address names none.</returns>
    public static string? QueueOf(Uri? inputAddress)
    {
        if (inputAddress is null || !inputAddress.IsAbsoluteUri)
        {
            return null;
        }

        var path = inputAddress.AbsolutePath.TrimEnd('/');
        var queue = path[(path.LastIndexOf('/') + 1)..];
        return queue.Length == 0 ? null : Uri.UnescapeDataString(queue);
    }
}
