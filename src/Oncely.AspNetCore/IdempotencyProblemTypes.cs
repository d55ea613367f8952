namespace Oncely.AspNetCore;

/// <summary>The problem types Oncely answers with (RFC 9457). Each is appended to <see cref="IdempotencyOptions.ProblemTypeBaseUri"/>.</summary>
public static class IdempotencyProblemTypes
{
    /// <summary><c>400</c>: the endpoint requires an <c>Idempotency-Key</c> and none was sent (row 2).</summary>
    public const string KeyMissing = "idempotency-key-missing";

    /// <summary><c>400</c>: the key is malformed (row 4).</summary>
    public const string KeyInvalid = "idempotency-key-invalid";

    /// <summary>
    /// <c>410</c>: the operation completed earlier, but its stored answer was encrypted (<c>ProtectStoredAnswers()</c>) under
    /// a Data Protection key that has been revoked or is gone, so it cannot be replayed; the operation did not run again
    /// (row 6a).
    /// </summary>
    public const string StoredAnswerUnreadable = "idempotency-stored-answer-unreadable";

    /// <summary><c>409</c>: the same request is still running (row 7).</summary>
    public const string RequestInProgress = "idempotency-request-in-progress";

    /// <summary><c>422</c> by default: the key was used before with a different payload (row 8).</summary>
    public const string KeyReused = "idempotency-key-reused";

    /// <summary><c>503</c>: the idempotency store is unreachable; nothing ran (row 13).</summary>
    public const string StoreUnavailable = "idempotency-store-unavailable";

    /// <summary><c>413</c>: the request body is over the fingerprint limit; nothing ran (row 15).</summary>
    public const string PayloadTooLarge = "idempotency-payload-too-large";

    /// <summary>
    /// <c>401</c>: the caller is not authenticated and the endpoint does not opt into the shared anonymous scope; nothing
    /// ran.
    /// </summary>
    public const string CallerUnauthenticated = "idempotency-caller-unauthenticated";

    /// <summary>
    /// <c>400</c> (or <c>408</c> for a stalled body): the request body could not be read because its framing is broken;
    /// nothing ran, nothing was recorded and the key can be used again (row 19).
    /// </summary>
    public const string RequestBodyUnreadable = "idempotency-request-body-unreadable";

    /// <summary><c>500</c>: the tenant of an authenticated caller could not be resolved; nothing ran.</summary>
    public const string TenantUnresolved = "idempotency-tenant-unresolved";
}
