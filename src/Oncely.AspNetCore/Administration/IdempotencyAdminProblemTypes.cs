namespace Oncely.AspNetCore;

/// <summary>
/// The problem types of the operator API (<c>MapIdempotencyAdmin</c>), appended to
/// <see cref="IdempotencyOptions.ProblemTypeBaseUri"/>. A store that cannot be reached answers
/// <see cref="IdempotencyProblemTypes.StoreUnavailable"/> (<c>503</c>), as everywhere else.
/// </summary>
public static class IdempotencyAdminProblemTypes
{
    /// <summary><c>400</c>: a query parameter or the release body is malformed; the detail names it and says what to send.</summary>
    public const string InvalidRequest = "idempotency-admin-invalid-request";

    /// <summary><c>404</c>: the record to release does not exist (it was never there, was released, expired or was purged).</summary>
    public const string RecordNotFound = "idempotency-record-not-found";

    /// <summary><c>409</c>: the record to release is Completed; its answer is replayed to every retry and it is never released.</summary>
    public const string RecordCompleted = "idempotency-record-completed";

    /// <summary>
    /// <c>409</c>: the record to release now carries another fencing token than the one sent (another attempt took it over
    /// since it was looked at); nothing was changed. The problem's <c>currentFencingToken</c> member holds the new one.
    /// </summary>
    public const string FencingTokenStale = "idempotency-fencing-token-stale";

    /// <summary><c>501</c>: the store in use does not implement <see cref="IIdempotencyStoreAdministration"/>.</summary>
    public const string NotSupported = "idempotency-admin-not-supported";

    /// <summary>
    /// <c>409</c>: an erasure kept records that are in progress (their operations may be running); everything else of the
    /// tenant or key was erased. The problem lists them (<c>inProgress</c>) with the counts erased; erase again once they
    /// complete, or release a stuck one first.
    /// </summary>
    public const string ErasureIncomplete = "idempotency-erasure-incomplete";

    /// <summary><c>404</c>: an erasure found nothing held for the tenant or key (no record, no audit entry); the request is audited all the same.</summary>
    public const string ErasureNothingFound = "idempotency-erasure-nothing-found";
}
