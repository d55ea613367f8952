using System.Globalization;
using Microsoft.Extensions.Logging;

namespace Oncely;

/// <summary>
/// Records a key reused with a different payload (decision-table row 8), for every transport: the redacted, size-capped
/// payload and both fingerprints go to the log (event <see cref="IdempotencyEventIds.KeyReused"/>) and, when the store
/// keeps one, to its audit, through the transport's executor so the write gets the same store-call span and deadline as
/// every other store call. Nothing here can change the answer: a redactor that throws or an audit write that fails is
/// logged, and the request (or message) is refused all the same. The kept payload passes the configured
/// <see cref="IdempotencyMaintenanceOptions.PayloadRedactor"/>, then the application's redaction
/// (<see cref="IdempotencyRedaction.Payload"/>: card numbers masked whatever the redactor let through), then the cap; the
/// log line carries exactly what the audit keeps.
/// </summary>
internal sealed partial class KeyReuseAuditor
{
    private readonly IdempotencyMaintenanceOptions _options;
    private readonly ILogger _logger;
    private readonly IdempotencyRedaction _redaction;

    /// <summary>Creates the auditor of an application.</summary>
    /// <param name="options">The redactor and the payload cap.</param>
    /// <param name="logger">Where audit events go.</param>
    /// <param name="redaction">The application's redaction; <see langword="null"/> for card-number masking only.</param>
    public KeyReuseAuditor(IdempotencyMaintenanceOptions options, ILogger<KeyReuseAuditor> logger, IdempotencyRedaction? redaction = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        _options = options;
        _logger = logger;
        _redaction = redaction ?? IdempotencyRedaction.Default;
    }

    /// <summary>Logs and stores the refusal of <paramref name="attemptedFingerprint"/> on <paramref name="record"/>. Never throws.</summary>
    /// <param name="executor">The transport's executor: its store, its clock, its store timeout and its telemetry.</param>
    /// <param name="record">The record that holds the key.</param>
    /// <param name="attemptedFingerprint">The refused request's (or message's) fingerprint.</param>
    /// <param name="contentType">The refused payload's content type, if known.</param>
    /// <param name="payload">The bytes the fingerprint hashed.</param>
    /// <returns>
    /// <see langword="false"/> when the store keeps an audit and writing the entry failed (event
    /// <see cref="IdempotencyEventIds.AuditFailed"/>); <see langword="true"/> otherwise.
    /// </returns>
    public async Task<bool> AuditAsync(IdempotencyExecutor executor, IdempotencyRecord record, string attemptedFingerprint, string? contentType, ReadOnlyMemory<byte> payload)
    {
        var id = record.Id;
        var kept = Redact(id, contentType, payload);
        LogKeyReused(_logger, _redaction.Tenant(id.Tenant), IdempotencyRedaction.Text(id.Operation), _redaction.Key(id.Key), record.Fingerprint, attemptedFingerprint, kept);
        if (executor.Store is not IIdempotencyAuditStore audit)
        {
            return true;
        }

        try
        {
            var invoker = executor.StoreInvoker;
            var clock = invoker.Clock;
            using var timeout = new CancellationTokenSource(executor.Options.StoreTimeout, clock);
            // Sealed before the store sees it when stored-answer protection is on; the log line above carries the redacted text.
            var stored = executor.Protection?.ProtectAuditPayload(id, kept) ?? kept;
            var entry = new KeyReuseAuditEntry(id, record.Fingerprint, attemptedFingerprint, stored, clock.GetUtcNow());
            await invoker.ObserveAsync(
                StoreCall.AppendAudit,
                id.Operation,
                static async (s, ct) =>
                {
                    await s.audit.AppendAsync(s.entry, ct).ConfigureAwait(false);
                    return true;
                },
                (audit, entry),
                timeout.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex)
        {
            LogAuditFailed(_logger, IdempotencyRedaction.Exception(ex), _redaction.Tenant(id.Tenant), IdempotencyRedaction.Text(id.Operation), _redaction.Key(id.Key));
            return false;
        }
    }

    private string Redact(IdempotencyRecordId id, string? contentType, ReadOnlyMemory<byte> payload)
    {
        string kept;
        try
        {
            kept = _options.PayloadRedactor(contentType, payload);
        }
        catch (Exception ex)
        {
            // A payload the redactor cannot handle (a lone surrogate escape, say) must not turn the refusal into a
            // failure, nor leak the raw payload: keep only what is certainly safe.
            LogRedactionFailed(_logger, IdempotencyRedaction.Exception(ex), _redaction.Tenant(id.Tenant), IdempotencyRedaction.Text(id.Operation), _redaction.Key(id.Key));
            return string.Create(CultureInfo.InvariantCulture, $"[{payload.Length} bytes of {IdempotencyRedaction.Text(contentType ?? "unknown content")}; could not be redacted, not logged]");
        }

        // Whatever the configured redactor let through: card numbers masked, then the application's own redaction,
        // before the cap (a cut could otherwise keep the first digits of a card number).
        kept = _redaction.Payload(kept ?? string.Empty);

        return kept.Length > _options.AuditPayloadLimit
            ? string.Concat(kept.AsSpan(0, _options.AuditPayloadLimit), "…[truncated]")
            : kept;
    }
}
