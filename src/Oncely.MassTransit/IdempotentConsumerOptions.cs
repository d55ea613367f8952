using MassTransit;

namespace Oncely.MassTransit;

/// <summary>
/// Settings of the idempotent consume filter (<c>UseIdempotentConsumers</c>). The engine settings it inherits (lease,
/// expiration, store timeout, completion retries, key length) apply to consumers only, independently of any HTTP
/// settings in the same application; the store, the key-reuse audit and the purges are shared
/// (<see cref="IdempotencyMaintenanceOptions"/>).
/// </summary>
public sealed class IdempotentConsumerOptions : IdempotencyEngineOptions
{
    private readonly Dictionary<Type, Func<object, string?>> _keySelectors = [];

    /// <summary>
    /// The header whose value is the idempotency key, instead of the message id. Default: <see langword="null"/>, the
    /// key is the envelope's <c>MessageId</c> (which MassTransit sets on every send and publish).
    /// </summary>
    public string? KeyHeader { get; set; }

    /// <summary>
    /// The header that names the tenant (the first half of the scope). A message without it is refused (faulted, not
    /// retried). Default: <see langword="null"/>, every message shares one scope per consumer
    /// (<see cref="IdempotencyRecordId.AnonymousTenant"/>).
    /// </summary>
    public string? TenantHeader { get; set; }

    /// <summary>
    /// What the fingerprint hashes, so the same key with a different payload is refused. Default:
    /// <see cref="MessageFingerprintSource.Message"/>, the deserialised message (its contract's members), so envelope
    /// fields that change on every publish (sent time, conversation id, host) never make two sends differ.
    /// </summary>
    public MessageFingerprintSource FingerprintSource { get; set; } = MessageFingerprintSource.Message;

    /// <summary>
    /// Names a consumer or handler in the operation (the second half of the scope). Argument: the consumer type, or the
    /// message type for a handler. Default: the consumer's full type name (<c>Payments.Payouts.PayoutConsumer</c>), and
    /// <c>handler:</c> plus the message URN for a handler. The record's operation is this name, <c>@</c> and the queue of
    /// the receive endpoint the message came from (<c>Payments.Payouts.PayoutConsumer@payouts</c>), so a message published
    /// to two endpoints runs on each, once. Renaming a consumer class (or its queue) changes its operation: set this to
    /// keep names stable across class renames.
    /// </summary>
    public Func<Type, string> OperationName { get; set; } = DefaultOperationName;

    /// <summary>
    /// Takes the key of <typeparamref name="TMessage"/> from the message itself (for example a payout id), instead of
    /// the message id or <see cref="KeyHeader"/>. Messages of other types keep the default.
    /// </summary>
    /// <typeparam name="TMessage">The message type.</typeparam>
    /// <param name="key">Reads the key; <see langword="null"/> or empty refuses the message (faulted, not retried).</param>
    /// <returns>The same options.</returns>
    public IdempotentConsumerOptions UseKeyFrom<TMessage>(Func<TMessage, string?> key)
        where TMessage : class
    {
        ArgumentNullException.ThrowIfNull(key);
        _keySelectors[typeof(TMessage)] = message => key((TMessage)message);
        return this;
    }

    internal Func<object, string?>? KeySelectorFor(Type messageType) => _keySelectors.GetValueOrDefault(messageType);

    /// <inheritdoc />
    public override IReadOnlyList<string> Validate()
    {
        var problems = new List<string>(base.Validate());
        if (KeyHeader is { Length: 0 } || TenantHeader is { Length: 0 })
        {
            problems.Add("Oncely.MassTransit: KeyHeader and TenantHeader must be null (the defaults) or a header name, not empty.");
        }

        if (OperationName is null)
        {
            problems.Add("Oncely.MassTransit: OperationName must be set (leave it at its default if unsure).");
        }

        if (!Enum.IsDefined(FingerprintSource))
        {
            problems.Add($"Oncely.MassTransit: FingerprintSource {FingerprintSource} is not one of Message or TransportBody.");
        }

        return problems;
    }

    private static string DefaultOperationName(Type type)
        => type.IsAssignableTo(typeof(IConsumer)) ? type.FullName ?? type.Name : "handler:" + MessageUrn.ForTypeString(type);
}
