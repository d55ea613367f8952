using System.Globalization;
using Microsoft.Extensions.Logging;

namespace Oncely.AspNetCore;

/// <summary>
/// Records a key reused with a different payload (row 8): the redacted, size-capped payload and both fingerprints go
/// to the log and, when the store keeps one, to its audit table. Nothing here can change the answer: a redactor that
/// throws or an audit write that fails is logged, and the request is refused all the same.
/// </summary>
internal sealed partial class KeyReuseAuditor(IdempotencyExecutor executor, TimeProvider clock, ILogger<KeyReuseAuditor> logger)
{
    public async Task AuditAsync(IdempotencyOptions options, IdempotencyRecord record, string attemptedFingerprint, string? contentType, ReadOnlyMemory<byte> body)
    {
        var id = record.Id;
        var payload = Redact(options, id, contentType, body);
        LogKeyReused(logger, id.Tenant, id.Operation, id.Key, record.Fingerprint, attemptedFingerprint, payload);
        if (executor.Store is not IIdempotencyAuditStore audit)
        {
            return;
        }

        try
        {
            using var timeout = new CancellationTokenSource(options.StoreTimeout, clock);
            var entry = new KeyReuseAuditEntry(id, record.Fingerprint, attemptedFingerprint, payload, clock.GetUtcNow());
            await executor.ObserveStoreCallAsync(
                StoreCall.AppendAudit,
                id.Operation,
                static async (s, ct) =>
                {
                    await s.audit.AppendAsync(s.entry, ct).ConfigureAwait(false);
                    return true;
                },
                (audit, entry),
                timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            LogAuditFailed(logger, ex, id.Tenant, id.Operation, id.Key);
        }
    }

    private string Redact(IdempotencyOptions options, IdempotencyRecordId id, string? contentType, ReadOnlyMemory<byte> body)
    {
        string payload;
        try
        {
            payload = options.PayloadRedactor(contentType, body);
        }
        catch (Exception ex)
        {
            // A payload the redactor cannot handle (a lone surrogate escape, say) must not turn the 422 into a 500, nor
            // leak the raw payload: keep only what is certainly safe.
            LogRedactionFailed(logger, ex, id.Tenant, id.Operation, id.Key);
            return string.Create(CultureInfo.InvariantCulture, $"[{body.Length} bytes of {contentType ?? "unknown content"}; could not be redacted, not logged]");
        }

        if (payload.Length > options.AuditPayloadLimit)
        {
            payload = string.Concat(payload.AsSpan(0, options.AuditPayloadLimit), "…[truncated]");
        }

        return payload;
    }

    [LoggerMessage(IdempotencyEventIds.KeyReused, LogLevel.Warning, "AUDIT key reused with a different payload: tenant {Tenant}, operation {Operation}, key {Key}, stored fingerprint {StoredFingerprint}, attempted fingerprint {AttemptedFingerprint}, payload {Payload}")]
    private static partial void LogKeyReused(ILogger logger, string tenant, string operation, string key, string storedFingerprint, string attemptedFingerprint, string payload);

    [LoggerMessage(IdempotencyEventIds.AuditFailed, LogLevel.Warning, "Writing the key-reuse audit entry for {Operation}, tenant {Tenant}, key {Key} failed")]
    private static partial void LogAuditFailed(ILogger logger, Exception exception, string tenant, string operation, string key);

    [LoggerMessage(IdempotencyEventIds.AuditRedactionFailed, LogLevel.Warning, "The payload redactor failed on the key-reuse audit entry for {Operation}, tenant {Tenant}, key {Key}; a summary without the payload was kept instead")]
    private static partial void LogRedactionFailed(ILogger logger, Exception exception, string tenant, string operation, string key);
}
