using System.Collections.Frozen;

namespace Oncely.AspNetCore;

/// <summary>
/// Rows 10 and 11, the one rule for which answers of a handler are stored (and then replayed to every retry) and which
/// release the record so that a retry runs again: <c>2xx</c>, <c>3xx</c> and <c>4xx</c> are stored except the retryable
/// <c>4xx</c> (<see cref="IdempotencyOptions.RetryableStatusCodes"/>: 408, 409, 425, 429); <c>5xx</c> only with
/// <see cref="IdempotencyOptions.StoreServerErrors"/>; an informational <c>1xx</c> never. The middleware settles records by
/// it, and the OpenAPI transformer documents the replay header on exactly the answers it stores.
/// </summary>
internal sealed class IdempotencyReplayRule
{
    private readonly FrozenSet<int> _retryableStatusCodes;

    /// <param name="storeServerErrors">Whether <c>5xx</c> answers are stored.</param>
    /// <param name="retryableStatusCodes">The <c>4xx</c> answers that release the record instead.</param>
    public IdempotencyReplayRule(bool storeServerErrors, IEnumerable<int> retryableStatusCodes)
    {
        StoreServerErrors = storeServerErrors;
        _retryableStatusCodes = retryableStatusCodes.ToFrozenSet();
    }

    /// <summary>Whether <c>5xx</c> answers are stored and replayed instead of releasing the record.</summary>
    public bool StoreServerErrors { get; }

    /// <summary>Whether an answer with <paramref name="status"/> is stored and replayed; otherwise the record is released.</summary>
    public bool Stores(int status) => status >= 500
        ? StoreServerErrors
        : status >= 200 && !_retryableStatusCodes.Contains(status);
}
