using Microsoft.Extensions.Logging;
using Polly;

namespace Oncely;

/// <summary>
/// What an attempt's transitions (complete, release, renew, recovery point) work with: the store calls, the settings of
/// its executor's policy, the completion retries and the logger. One per executor (and per <see cref="IdempotencyExecutor.WithPolicy"/>),
/// shared by every attempt it starts, so an attempt holds one reference and never calls back into its executor.
/// </summary>
internal sealed class ExecutionRuntime(StoreInvoker store, IdempotencyEngineOptions options, OperationSettings settings, ResiliencePipeline<bool> completionRetries, ILogger logger, IdempotencyRedaction redaction, StoredAnswerProtection? protection)
{
    /// <summary>Every store call, bounded and observed.</summary>
    public StoreInvoker Store { get; } = store;

    /// <summary>The engine settings (store timeout, renewal on or off, the one-commit lock timeout).</summary>
    public IdempotencyEngineOptions Options { get; } = options;

    /// <summary>The lease, expiration, renewal interval and in-progress wait in force: the engine's, with the policy's applied.</summary>
    public OperationSettings Settings { get; } = settings;

    /// <summary>Retries a failed completion write (row 17) with backoff; empty when <see cref="IdempotencyEngineOptions.CompletionRetries"/> is zero.</summary>
    public ResiliencePipeline<bool> CompletionRetries { get; } = completionRetries;

    /// <summary>Where the executor's and its attempts' events go (one category: the executor's).</summary>
    public ILogger Logger { get; } = logger;

    /// <summary>What every logged key and tenant passes through.</summary>
    public IdempotencyRedaction Redaction { get; } = redaction;

    /// <summary>The engine's clock.</summary>
    public TimeProvider Clock => Store.Clock;

    /// <summary>Encrypts stored answers and audit payloads (<c>ProtectStoredAnswers()</c>), or <see langword="null"/> when they are kept in clear.</summary>
    public StoredAnswerProtection? Protection { get; } = protection;

    /// <summary>
    /// What the store is given in place of <paramref name="response"/>, on every completion path (plain, in the operation's
    /// transaction, staged in an EF Core context): a successful answer's body dropped when
    /// <see cref="IdempotencyEngineOptions.StoreSuccessfulResponseBodies"/> is off (kept as omitted, as row 16), then headers
    /// and body sealed when protection is on.
    /// </summary>
    public IdempotentResponse ForStore(IdempotencyRecordId id, IdempotentResponse response)
    {
        if (!Options.StoreSuccessfulResponseBodies && response.StatusCode < 300 && !response.Body.IsEmpty)
        {
            response = new IdempotentResponse(response.StatusCode, response.Headers, ReadOnlyMemory<byte>.Empty, bodyOmitted: true);
        }

        return Protection?.Protect(id, response) ?? response;
    }

    /// <summary>
    /// A Completed record as a replay can use it: its answer opened when it is protected. <see langword="false"/> (event
    /// 1050 logged) when a protected answer cannot be opened (its key is gone or revoked, or protection is off).
    /// </summary>
    public bool TryReadAnswer(IdempotencyRecord record, out IdempotencyRecord readable)
    {
        readable = record;
        if (record.Response is not { } stored)
        {
            return true;
        }

        var id = record.Id;
        if (!StoredAnswerProtection.IsProtected(stored))
        {
            if (Protection is not null)
            {
                StoredAnswerProtection.LogUnprotectedAnswerReplayed(Logger, Redaction.Tenant(id.Tenant), IdempotencyRedaction.Text(id.Operation), Redaction.Key(id.Key));
            }

            return true;
        }

        Exception? failure = null;
        if (Protection?.TryUnprotect(id, stored, out var answer, out failure) == true)
        {
            readable = new IdempotencyRecord
            {
                Id = id,
                Fingerprint = record.Fingerprint,
                State = record.State,
                FencingToken = record.FencingToken,
                LeaseExpiresAt = record.LeaseExpiresAt,
                ExpiresAt = record.ExpiresAt,
                RecoveryPoint = record.RecoveryPoint,
                Response = answer,
                Attempts = record.Attempts,
                CreatedAt = record.CreatedAt,
            };
            return true;
        }

        failure ??= new InvalidOperationException("The stored answer is protected, but stored-answer protection is not turned on (ProtectStoredAnswers()), so it cannot be decrypted.");
        StoredAnswerProtection.LogStoredAnswerUnreadable(Logger, failure is null ? null : IdempotencyRedaction.Exception(failure), Redaction.Tenant(id.Tenant), IdempotencyRedaction.Text(id.Operation), Redaction.Key(id.Key), stored.StatusCode);
        return false;
    }
}
