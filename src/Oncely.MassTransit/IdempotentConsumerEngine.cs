using System.Globalization;
using MassTransit;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Oncely.MassTransit;

/// <summary>
/// What every idempotent consume filter of a bus shares: the executor (its own, with the consumer settings, over the
/// application's store), the options, the clock and the log. Turns a consumed message into its record id.
/// </summary>
internal sealed partial class IdempotentConsumerEngine
{
    private readonly ILogger _logger;

    public IdempotentConsumerEngine(IIdempotencyStore store, IdempotentConsumerOptions options, TimeProvider? clock, ILoggerFactory? loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        var problems = options.Validate();
        if (problems.Count > 0)
        {
            throw new ArgumentException(string.Join(Environment.NewLine, problems), nameof(options));
        }

        if (store is IIdempotencyStoreLimits limits && options.MaxKeyLength > limits.MaxKeyLength)
        {
            throw new ArgumentException(
                $"Oncely.MassTransit: MaxKeyLength is {options.MaxKeyLength}, but the idempotency store {store.GetType().Name} can index keys of at most {limits.MaxKeyLength} characters. Set MaxKeyLength to {limits.MaxKeyLength} or less (the default, 255, fits every store).",
                nameof(options));
        }

        loggerFactory ??= NullLoggerFactory.Instance;
        Options = options;
        Clock = clock ?? TimeProvider.System;
        Executor = new IdempotencyExecutor(store, options, Clock, loggerFactory.CreateLogger<IdempotencyExecutor>());
        _logger = loggerFactory.CreateLogger("Oncely.MassTransit.IdempotentConsumeFilter");
    }

    public IdempotencyExecutor Executor { get; }

    public IdempotentConsumerOptions Options { get; }

    public TimeProvider Clock { get; }

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
            var text = reason == MessageRejection.KeyMissing
                ? $"The message has no idempotency key: {source} is missing or empty, so {operation} cannot tell a redelivery from a new message. It was not consumed; send it with {source} set."
                : string.Create(CultureInfo.InvariantCulture, $"The message's idempotency key from {source} is malformed ({error}): a key is 1 to {Options.MaxKeyLength} visible ASCII characters. It was not consumed by {operation}.");
            LogRejected(_logger, operation, reason, text);
            throw new IdempotentMessageRejectedException(reason, null, text);
        }

        var tenant = IdempotencyRecordId.AnonymousTenant;
        if (Options.TenantHeader is { } tenantHeader)
        {
            tenant = context.Headers.Get<string>(tenantHeader) ?? string.Empty;
            if (tenant.Length == 0)
            {
                var text = $"The message with key '{key}' has no {tenantHeader} header, which names its tenant; it was not consumed by {operation}. Send it with the header set.";
                LogRejected(_logger, operation, MessageRejection.TenantMissing, text);
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

        if (!await AuditAsync(record, attempted).ConfigureAwait(false))
        {
            return false;
        }

        audited.Audited(record.Id);
        return true;
    }

    /// <summary>
    /// Records a key reused with a different payload: the redacted, capped payload and both fingerprints go to the log
    /// (event <see cref="IdempotencyEventIds.KeyReused"/>) and, when the store keeps one, to its audit. Never throws.
    /// </summary>
    /// <returns><see langword="false"/> when the store keeps an audit and writing the entry failed (event <see cref="IdempotencyEventIds.AuditFailed"/>).</returns>
    public async Task<bool> AuditAsync(IdempotencyRecord record, MessageFingerprint attempted)
    {
        var id = record.Id;
        string payload;
        try
        {
            payload = Options.PayloadRedactor(attempted.ContentType, attempted.Payload);
        }
        catch (Exception ex)
        {
            LogRedactionFailed(_logger, ex, id.Tenant, id.Operation, id.Key);
            payload = string.Create(CultureInfo.InvariantCulture, $"[{attempted.Payload.Length} bytes of {attempted.ContentType ?? "unknown content"}; could not be redacted, not logged]");
        }

        if (payload.Length > Options.AuditPayloadLimit)
        {
            payload = string.Concat(payload.AsSpan(0, Options.AuditPayloadLimit), "…[truncated]");
        }

        LogKeyReused(_logger, id.Tenant, id.Operation, id.Key, record.Fingerprint, attempted.Value, payload);
        if (Executor.Store is not IIdempotencyAuditStore audit)
        {
            return true;
        }

        try
        {
            using var timeout = new CancellationTokenSource(Options.StoreTimeout, Clock);
            await audit.AppendAsync(new KeyReuseAuditEntry(id, record.Fingerprint, attempted.Value, payload, Clock.GetUtcNow()), timeout.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex)
        {
            LogAuditFailed(_logger, ex, id.Tenant, id.Operation, id.Key);
            return false;
        }
    }

    [LoggerMessage(IdempotencyEventIds.MessageRejected, LogLevel.Warning, "A message was refused by {Operation} without running ({Reason}): {Detail}")]
    private static partial void LogRejected(ILogger logger, string operation, MessageRejection reason, string detail);

    [LoggerMessage(IdempotencyEventIds.KeyReused, LogLevel.Warning, "AUDIT key reused with a different payload: tenant {Tenant}, operation {Operation}, key {Key}, stored fingerprint {StoredFingerprint}, attempted fingerprint {AttemptedFingerprint}, payload {Payload}")]
    private static partial void LogKeyReused(ILogger logger, string tenant, string operation, string key, string storedFingerprint, string attemptedFingerprint, string payload);

    [LoggerMessage(IdempotencyEventIds.AuditFailed, LogLevel.Warning, "Writing the key-reuse audit entry for {Operation}, tenant {Tenant}, key {Key} failed")]
    private static partial void LogAuditFailed(ILogger logger, Exception exception, string tenant, string operation, string key);

    [LoggerMessage(IdempotencyEventIds.AuditRedactionFailed, LogLevel.Warning, "The payload redactor failed on the key-reuse audit entry for {Operation}, tenant {Tenant}, key {Key}; a summary without the payload was kept instead")]
    private static partial void LogRedactionFailed(ILogger logger, Exception exception, string tenant, string operation, string key);
}
