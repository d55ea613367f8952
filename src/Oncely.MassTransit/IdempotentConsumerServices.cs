using System.Globalization;
using MassTransit;
using Microsoft.Extensions.Compliance.Redaction;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Oncely.MassTransit;

/// <summary>
/// What every idempotent consume filter of a bus shares: the executor (its own, with the consumer settings, over the
/// application's store), the options, the shared <see cref="KeyReuseAuditor"/> and the log. Turns a consumed message
/// into its record id (key and tenant); everything else a transport needs lives in core.
/// </summary>
internal sealed partial class IdempotentConsumerServices
{
    private readonly ILogger _logger;
    private readonly KeyReuseAuditor _auditor;

    public IdempotentConsumerServices(IIdempotencyStore store, IdempotentConsumerOptions options, KeyReuseAuditor auditor, TimeProvider? clock, ILoggerFactory? loggerFactory, IdempotencyRedaction? redaction = null, StoredAnswerProtection? protection = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(auditor);
        var problems = options.Validate();
        if (problems.Count > 0)
        {
            throw new ArgumentException(string.Join(Environment.NewLine, problems), nameof(options));
        }

        if (IdempotencyStoreLimitsCheck.Refusal(store, options.MaxKeyLength, "Oncely.MassTransit") is { } refusal)
        {
            throw new ArgumentException(refusal, nameof(options));
        }

        loggerFactory ??= NullLoggerFactory.Instance;
        Options = options;
        _auditor = auditor;
        Executor = new IdempotencyExecutor(store, options, clock ?? TimeProvider.System, loggerFactory.CreateLogger<IdempotencyExecutor>(), null, redaction ?? IdempotencyRedaction.Default, protection);
        _logger = loggerFactory.CreateLogger("Oncely.MassTransit.IdempotentConsumeFilter");
    }

    public IdempotencyExecutor Executor { get; }

    public IdempotentConsumerOptions Options { get; }

    public ILogger Logger => _logger;

    /// <summary>The record a message maps to: (tenant header or the shared scope, operation, key).</summary>
    /// <exception cref="IdempotentMessageRejectedException">The key or the tenant is missing or malformed.</exception>
    public IdempotencyRecordId Identify<TMessage>(ConsumeContext<TMessage> context, string operation)
        where TMessage : class
    {
        var (source, raw) = Options.KeySelectorFor(typeof(TMessage)) is { } selector
            ? ("the message's key member", selector(context.Message))
            : Options.KeyHeader is { } header
                ? ($"the {header} header", context.Headers.Get<string>(header))
                : ("MessageId", context.MessageId?.ToString("D"));
        var error = IdempotencyKeyParser.TryParse(raw, Options.MaxKeyLength, out var key);
        if (key is null)
        {
            var reason = error == IdempotencyKeyError.None || error == IdempotencyKeyError.Empty ? MessageRejection.KeyMissing : MessageRejection.KeyInvalid;
            var text = IdempotencyRedaction.Text(reason == MessageRejection.KeyMissing
                ? $"The message has no idempotency key: {source} is missing or empty, so {operation} cannot tell a redelivery from a new message. It was not consumed; send it with {source} set."
                : string.Create(CultureInfo.InvariantCulture, $"The message's idempotency key from {source} is malformed ({error}): a key is 1 to {Options.MaxKeyLength} visible ASCII characters. It was not consumed by {operation}."));
            LogRejected(_logger, IdempotencyRedaction.Text(operation), reason, text);
            throw new IdempotentMessageRejectedException(reason, null, text);
        }

        var tenant = IdempotencyRecordId.AnonymousTenant;
        if (Options.TenantHeader is { } tenantHeader)
        {
            tenant = context.Headers.Get<string>(tenantHeader) ?? string.Empty;
            if (tenant.Length == 0)
            {
                var text = IdempotencyRedaction.Text($"The message with key '{key}' has no {tenantHeader} header, which names its tenant; it was not consumed by {operation}. Send it with the header set.");
                LogRejected(_logger, IdempotencyRedaction.Text(operation), MessageRejection.TenantMissing, text);
                throw new IdempotentMessageRejectedException(MessageRejection.TenantMissing, null, text);
            }
        }

        return new IdempotencyRecordId(tenant, operation, key);
    }

    /// <summary>
    /// Audits a key-reuse refusal once per delivery (<see cref="DeliveryAudit"/>), on whichever attempt meets it: the first
    /// attempt may have met a store outage, and a retry policy that does not ignore the refusal meets it on every attempt.
    /// An entry the store failed to write is tried again on the delivery's next attempt. Never throws.
    /// </summary>
    /// <param name="delivery">The delivery's receive context, shared by all its retry attempts.</param>
    /// <param name="record">The record that holds the key.</param>
    /// <param name="attempted">The refused message's fingerprint and payload.</param>
    /// <returns>
    /// <see langword="true"/> when this delivery's refusal is audited (now or on an earlier attempt); <see langword="false"/>
    /// when the store keeps an audit and writing the entry failed.
    /// </returns>
    public async Task<bool> AuditOncePerDeliveryAsync(ReceiveContext delivery, IdempotencyRecord record, MessageFingerprint attempted)
    {
        var audited = delivery.GetOrAddPayload(() => new DeliveryAudit());
        if (audited.Contains(record.Id))
        {
            return true;
        }

        if (!await _auditor.AuditAsync(Executor, record, attempted.Value, attempted.ContentType, attempted.Payload).ConfigureAwait(false))
        {
            return false;
        }

        audited.Audited(record.Id);
        return true;
    }
}
