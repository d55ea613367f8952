using MassTransit;

namespace Oncely.MassTransit;

/// <summary>
/// Settings of the idempotent consume filter (<c>UseIdempotentConsumers</c>). The engine settings it inherits (lease,
/// expiration, store timeout, completion retries) apply to consumers only, independently of any HTTP settings in the
/// same application; the store is shared.
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
    /// The longest key accepted, in characters; a longer one is refused (faulted, not retried). Default: 255, like HTTP
    /// keys; at most what the store can index.
    /// </summary>
    public int MaxKeyLength { get; set; } = IdempotencyKeyParser.DefaultMaxLength;

    /// <summary>
    /// Turns a refused payload (a key reused with a different payload) into the text kept in the audit, before it is
    /// capped at <see cref="AuditPayloadLimit"/>. Arguments: the content type and the bytes the fingerprint hashed.
    /// Default: <see cref="IdempotencyPayloadRedactor.Redact"/> (JSON keeps its shape with the values of sensitive-looking
    /// members — card, cvc, iban, password, secret, token, account number… — replaced by <c>"***"</c>; anything else is
    /// summarised by its length).
    /// </summary>
    public Func<string?, ReadOnlyMemory<byte>, string> PayloadRedactor { get; set; } = IdempotencyPayloadRedactor.Redact;

    /// <summary>The most characters of a redacted payload kept in the audit. Default: 2048.</summary>
    public int AuditPayloadLimit { get; set; } = 2048;

    /// <summary>
    /// How often expired records (and, for stores that keep an audit, entries older than <see cref="AuditRetention"/>)
    /// are purged, for stores without native expiry (SQL), when the services come from
    /// <c>AddIdempotentConsumers</c>. Default: 5 minutes.
    /// </summary>
    public TimeSpan PurgeInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The most rows one purge statement deletes; purging repeats until a batch comes back short. Default: 500.</summary>
    public int PurgeBatchSize { get; set; } = 500;

    /// <summary>How long key-reuse audit entries are kept. Default: 30 days.</summary>
    public TimeSpan AuditRetention { get; set; } = TimeSpan.FromDays(30);

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
        if (MaxKeyLength is < 1 or > 4096)
        {
            problems.Add($"Oncely.MassTransit: MaxKeyLength must be between 1 and 4096 (it is {MaxKeyLength}); the default is 255.");
        }

        if (KeyHeader is { Length: 0 } || TenantHeader is { Length: 0 })
        {
            problems.Add("Oncely.MassTransit: KeyHeader and TenantHeader must be null (the defaults) or a header name, not empty.");
        }

        if (OperationName is null || PayloadRedactor is null)
        {
            problems.Add("Oncely.MassTransit: OperationName and PayloadRedactor must be set (leave them at their defaults if unsure).");
        }

        if (!Enum.IsDefined(FingerprintSource))
        {
            problems.Add($"Oncely.MassTransit: FingerprintSource {FingerprintSource} is not one of Message or TransportBody.");
        }

        if (AuditPayloadLimit < 0)
        {
            problems.Add($"Oncely.MassTransit: AuditPayloadLimit must not be negative (it is {AuditPayloadLimit}).");
        }

        if (PurgeInterval <= TimeSpan.Zero || PurgeBatchSize <= 0 || AuditRetention <= TimeSpan.Zero)
        {
            problems.Add($"Oncely.MassTransit: PurgeInterval, PurgeBatchSize and AuditRetention must be positive (they are {PurgeInterval}, {PurgeBatchSize} and {AuditRetention}).");
        }

        return problems;
    }

    private static string DefaultOperationName(Type type)
        => type.IsAssignableTo(typeof(IConsumer)) ? type.FullName ?? type.Name : "handler:" + MessageUrn.ForTypeString(type);
}

/// <summary>What the fingerprint of a consumed message hashes.</summary>
public enum MessageFingerprintSource
{
    /// <summary>
    /// The deserialised message, serialised again with MassTransit's JSON settings and canonicalised (RFC 8785), under
    /// the message type's URN. Two sends of the same message match whatever their envelopes say; members the contract
    /// does not declare are not part of it.
    /// </summary>
    Message = 0,

    /// <summary>
    /// The transport body exactly as received (JSON canonicalised first when its content type is JSON). Only for raw
    /// JSON or other envelope-less serialisers: an envelope carries a new sent time on every publish, so a republished
    /// duplicate would count as another payload.
    /// </summary>
    TransportBody = 1,
}
