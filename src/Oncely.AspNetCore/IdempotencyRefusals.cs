using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>
/// Every refusal Oncely's middleware answers with, keyed by its decision-table row (<c>docs/decision-table.md</c>): status,
/// problem type, title and detail in one place. Change an answer's words here; <c>RefusalCatalogueTests</c> keeps the
/// statuses and types in step with the table.
/// </summary>
internal static class IdempotencyRefusals
{
    /// <summary>Row 2, the key read from the <c>Idempotency-Key</c> header.</summary>
    public static readonly IdempotencyRefusal Row02KeyMissing = new("2", StatusCodes.Status400BadRequest, IdempotencyProblemTypes.KeyMissing, "Idempotency-Key required");

    /// <summary>Row 2, the key read from another header or from the body (the source writes the detail).</summary>
    public static readonly IdempotencyRefusal Row02KeyMissingFromSource = new("2", StatusCodes.Status400BadRequest, IdempotencyProblemTypes.KeyMissing, "Idempotency key required");

    /// <summary>Row 4, the key read from the <c>Idempotency-Key</c> header.</summary>
    public static readonly IdempotencyRefusal Row04KeyInvalid = new("4", StatusCodes.Status400BadRequest, IdempotencyProblemTypes.KeyInvalid, "Invalid Idempotency-Key");

    /// <summary>Row 4, the key read from another header or from the body (the source writes the detail).</summary>
    public static readonly IdempotencyRefusal Row04KeyInvalidFromSource = new("4", StatusCodes.Status400BadRequest, IdempotencyProblemTypes.KeyInvalid, "Invalid idempotency key");

    /// <summary>Row 6a: the operation completed, but its protected stored answer cannot be decrypted (its key was revoked or is gone).</summary>
    public static readonly IdempotencyRefusal Row06aStoredAnswerUnreadable = new("6a", StatusCodes.Status410Gone, IdempotencyProblemTypes.StoredAnswerUnreadable, "Stored answer no longer available");

    /// <summary>Row 7: the same request still holds its lease. Answered with <c>Retry-After</c>.</summary>
    public static readonly IdempotencyRefusal Row07RequestInProgress = new("7", StatusCodes.Status409Conflict, IdempotencyProblemTypes.RequestInProgress, "Request in progress");

    /// <summary>Row 8: the key was used with another payload. The status is the endpoint's <c>KeyReusedStatusCode</c> (422 by default).</summary>
    public static readonly IdempotencyRefusal Row08KeyReused = new("8", StatusCodes.Status422UnprocessableEntity, IdempotencyProblemTypes.KeyReused, "Idempotency-Key reused");

    /// <summary>Row 9a: an unauthenticated caller on an endpoint without the anonymous scope.</summary>
    public static readonly IdempotencyRefusal Row09aCallerUnauthenticated = new("9a", StatusCodes.Status401Unauthorized, IdempotencyProblemTypes.CallerUnauthenticated, "Authentication required");

    /// <summary>Row 9c: an authenticated caller whose tenant the resolver could not tell.</summary>
    public static readonly IdempotencyRefusal Row09cTenantUnresolved = new("9c", StatusCodes.Status500InternalServerError, IdempotencyProblemTypes.TenantUnresolved, "Caller could not be identified");

    /// <summary>Row 13: the store is unreachable or too slow; fail closed. Answered with <c>Retry-After</c>.</summary>
    public static readonly IdempotencyRefusal Row13StoreUnavailable = new("13", StatusCodes.Status503ServiceUnavailable, IdempotencyProblemTypes.StoreUnavailable, "Idempotency store unavailable");

    /// <summary>Row 15: the request body is over the fingerprint limit.</summary>
    public static readonly IdempotencyRefusal Row15PayloadTooLarge = new("15", StatusCodes.Status413PayloadTooLarge, IdempotencyProblemTypes.PayloadTooLarge, "Request body too large");

    /// <summary>Row 19: the request's framing is broken. The status is the server's (<c>400</c>, <c>408</c> for a stalled body).</summary>
    public static readonly IdempotencyRefusal Row19RequestBodyUnreadable = new("19", StatusCodes.Status400BadRequest, IdempotencyProblemTypes.RequestBodyUnreadable, "Request body could not be read");

    /// <summary>Every entry, for the test that holds the catalogue to the table.</summary>
    public static IReadOnlyList<IdempotencyRefusal> All { get; } =
    [
        Row02KeyMissing, Row02KeyMissingFromSource, Row04KeyInvalid, Row04KeyInvalidFromSource, Row06aStoredAnswerUnreadable, Row07RequestInProgress, Row08KeyReused,
        Row09aCallerUnauthenticated, Row09cTenantUnresolved, Row13StoreUnavailable, Row15PayloadTooLarge, Row19RequestBodyUnreadable,
    ];

    /// <summary>Row 6a's detail for an operation that first answered <paramref name="storedStatus"/>.</summary>
    public static string Row06aDetail(int storedStatus) => string.Create(
        System.Globalization.CultureInfo.InvariantCulture,
        $"The operation with this Idempotency-Key already ran and answered {storedStatus}; it will not run again. Its stored answer can no longer be decrypted (the server's encryption key for it was retired), so it cannot be repeated: look the result up instead (for example with GET on the resource), and do not resend this operation with a new key unless you know it did not take effect.");

    public const string Row07Detail = "A request with this Idempotency-Key is still being processed. Retry after the Retry-After delay with the same key and payload to receive its result.";

    public const string Row08Detail = "This Idempotency-Key was already used for a request with a different payload. Use a new key for a new operation; retries of an operation must send exactly the same request.";

    public const string Row09aDetail = "This idempotent operation keeps each caller's answers apart, so it needs an authenticated caller: send valid credentials. Nothing was executed.";

    public const string Row09cDetail = "The server could not tell which tenant this authenticated request belongs to, so it refused to run it. This is a server configuration problem (IdempotencyOptions.TenantResolver).";

    public const string Row13Detail = "The request was not processed because the server cannot currently guarantee it runs only once. Nothing was executed: retry later with the same Idempotency-Key.";

    public const string Row19Detail = "The request body was malformed, shorter than its Content-Length, or arrived too slowly. Nothing was executed and the Idempotency-Key can be used again: resend the whole request.";

    /// <summary>Row 15's detail for an endpoint whose limit is <paramref name="maxRequestBodySize"/> bytes.</summary>
    public static string Row15Detail(int maxRequestBodySize) => $"Idempotent requests may carry at most {maxRequestBodySize} bytes of body. Nothing was executed.";
}
