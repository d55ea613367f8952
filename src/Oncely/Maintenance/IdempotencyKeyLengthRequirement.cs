namespace Oncely;

/// <summary>
/// A transport's longest accepted key, registered by the transport so that <see cref="IdempotencyStoreMaintenance"/>
/// checks it against the store once, at start (<see cref="IdempotencyStoreLimitsCheck"/>).
/// </summary>
/// <param name="Owner">Who sets it, named in the refusal (<c>Oncely</c>, <c>Oncely.MassTransit</c>).</param>
/// <param name="MaxKeyLength">Reads the transport's <c>MaxKeyLength</c> from the application's services.</param>
internal sealed record IdempotencyKeyLengthRequirement(string Owner, Func<IServiceProvider, int> MaxKeyLength);
