using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Oncely;

/// <summary>
/// Erases what the store holds for one tenant, or one tenant's key, and audits the erasure (registered by every
/// transport's <c>AddIdempotency…</c>; the operator API's erase endpoints call it). See <c>docs/data-protection.md</c>.
/// </summary>
/// <remarks>
/// <para>Erasure means the key is forgotten: a retry of an erased key is a new request and runs the operation again, so
/// erase only what no client will retry (a closed customer account, a request under data-protection law).</para>
/// <para>Records in progress are never erased (the erasure refuses them with a reason rather than waiting): they are
/// reported in <see cref="IdempotencyErasureResult.InProgress"/>, and the rest is erased. Erasing again later is safe.</para>
/// <para>Every erasure, whatever it found, is logged (event <see cref="IdempotencyEventIds.RecordsErased"/>, no payload)
/// and kept in the key-reuse audit as an entry of the operation <see cref="AuditOperation"/>: the tenant, the key (empty
/// for a whole tenant), when, and a payload that holds only the counts and who asked. No stored answer or request
/// payload is ever part of it, and later erasures never erase it; the audit retention deletes it like any entry.</para>
/// </remarks>
public sealed partial class IdempotencyEraser
{
    /// <summary>
    /// The operation name under which erasures are kept in the key-reuse audit: <c>oncely:erasure</c>. No transport
    /// produces it (HTTP operations are a method and a route, message operations a consumer and a queue).
    /// </summary>
    public const string AuditOperation = "oncely:erasure";

    private readonly IIdempotencyStore _store;
    private readonly TimeProvider _clock;
    private readonly ILogger _logger;

    /// <summary>How tenants, keys and operator names are masked in the log line (card numbers never written).</summary>
    internal IdempotencyRedaction Redaction { get; init; } = IdempotencyRedaction.Default;

    /// <summary>Creates an eraser over <paramref name="store"/>.</summary>
    /// <param name="store">The store; it must implement <see cref="IIdempotencyStoreErasure"/> for erasures to succeed.</param>
    /// <param name="timeProvider">The clock of the erasure's audit entry; defaults to <see cref="TimeProvider.System"/>.</param>
    /// <param name="logger">Where erasures are logged; defaults to none.</param>
    public IdempotencyEraser(IIdempotencyStore store, TimeProvider? timeProvider = null, ILogger<IdempotencyEraser>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        _store = store;
        _clock = timeProvider ?? TimeProvider.System;
        _logger = logger ?? (ILogger)NullLogger.Instance;
    }

    /// <summary>Whether the store can erase (implements <see cref="IIdempotencyStoreErasure"/>).</summary>
    public bool IsSupported => _store is IIdempotencyStoreErasure;

    /// <summary>Erases every record and key-reuse audit entry of <paramref name="tenant"/> except records in progress, then audits and logs the erasure.</summary>
    /// <param name="tenant">The tenant, exactly (<see cref="IdempotencyRecordId.AnonymousTenant"/> for the anonymous scope).</param>
    /// <param name="requestedBy">Who asked (an operator's name), kept in the erasure's audit entry and log line.</param>
    /// <param name="cancellationToken">Cancels the erasure; what was erased before stays erased (and is not audited), and erasing again is safe. Once the store has answered, the audit entry is written regardless.</param>
    /// <returns>What was erased and which records in progress were kept.</returns>
    /// <exception cref="NotSupportedException">The store does not implement <see cref="IIdempotencyStoreErasure"/>.</exception>
    public ValueTask<IdempotencyErasureResult> EraseTenantAsync(string tenant, string requestedBy, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentNullException.ThrowIfNull(requestedBy);
        return EraseAsync(tenant, null, requestedBy, cancellationToken);
    }

    /// <summary>Erases the records (under every operation) and key-reuse audit entries of one tenant's key except records in progress, then audits and logs the erasure.</summary>
    /// <param name="tenant">The tenant, exactly (<see cref="IdempotencyRecordId.AnonymousTenant"/> for the anonymous scope).</param>
    /// <param name="key">The client's idempotency key, exactly; not empty.</param>
    /// <param name="requestedBy">Who asked (an operator's name), kept in the erasure's audit entry and log line.</param>
    /// <param name="cancellationToken">Cancels the erasure; what was erased before stays erased (and is not audited), and erasing again is safe. Once the store has answered, the audit entry is written regardless.</param>
    /// <returns>What was erased and which records in progress were kept.</returns>
    /// <exception cref="NotSupportedException">The store does not implement <see cref="IIdempotencyStoreErasure"/>.</exception>
    public ValueTask<IdempotencyErasureResult> EraseKeyAsync(string tenant, string key, string requestedBy, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentNullException.ThrowIfNull(requestedBy);
        return EraseAsync(tenant, key, requestedBy, cancellationToken);
    }

    private async ValueTask<IdempotencyErasureResult> EraseAsync(string tenant, string? key, string requestedBy, CancellationToken cancellationToken)
    {
        if (_store is not IIdempotencyStoreErasure erasure)
        {
            throw new NotSupportedException(
                $"The idempotency store in use ({_store.GetType().Name}) cannot erase records: it does not implement IIdempotencyStoreErasure. " +
                "Every store shipped with Oncely does; a store that wraps one must pass the capability on.");
        }

        var result = key is null
            ? await erasure.EraseTenantAsync(tenant, cancellationToken).ConfigureAwait(false)
            : await erasure.EraseKeyAsync(tenant, key, cancellationToken).ConfigureAwait(false);
        LogErased(_logger, key is null ? "every key" : "key " + Redaction.Key(key), Redaction.Tenant(tenant), result.RecordsErased, result.AuditEntriesErased, result.InProgress.Count, IdempotencyRedaction.Text(requestedBy));
        if (_store is IIdempotencyAuditStore audit)
        {
            var entry = new KeyReuseAuditEntry(new IdempotencyRecordId(tenant, AuditOperation, key ?? string.Empty), string.Empty, string.Empty, Describe(key, result, requestedBy), _clock.GetUtcNow());
            try
            {
                // Not cancelled with the caller: the erasure has happened, and its audit is the proof of it. The store's
                // own per-call deadline bounds the write.
                await audit.AppendAsync(entry, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                // The erasure happened; its log line above is the record of it.
                LogAuditFailed(_logger, IdempotencyRedaction.Exception(e), Redaction.Tenant(tenant), key is null ? "every key" : "key " + Redaction.Key(key));
            }
        }

        return result;
    }

    /// <summary>The erasure audit entry's payload: counts and who asked, nothing else (no key, no tenant: they are the entry's id).</summary>
    private static string Describe(string? key, IdempotencyErasureResult result, string requestedBy)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("erased", key is null ? "tenant" : "key");
            json.WriteNumber("recordsErased", result.RecordsErased);
            json.WriteNumber("auditEntriesErased", result.AuditEntriesErased);
            json.WriteNumber("inProgressKept", result.InProgress.Count);
            json.WriteString("requestedBy", requestedBy);
            json.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }
}
