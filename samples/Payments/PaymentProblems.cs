using Oncely.AspNetCore;
using Payments.Ledger;

namespace Payments;

/// <summary>The sample's own problem+json answers; each has a type a client can switch on.</summary>
public static class PaymentProblems
{
    public const string TypeBase = "https://payments.example/problems/";

    /// <summary>
    /// The sample's one rule for a request refused before its operation starts (a validation failure): the answer is
    /// never recorded, so the key stays usable once the client fixes the request — what Stripe does. A one-commit
    /// endpoint has not reserved yet; on a two-commit endpoint (<c>POST /accounts</c>, <c>POST /payouts</c>, every
    /// endpoint with <c>Payments:OneCommit=false</c>) the middleware reserved before the handler ran, so the record is
    /// released before the refusal is answered.
    /// </summary>
    public static async Task<IResult> RefuseUnrecordedAsync(HttpContext context, IResult refusal)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.GetIdempotencyExecution() is { } execution)
        {
            // Not tied to the client's connection, like Oncely's own transitions: a hang-up must not leave the key held.
            await execution.ReleaseAsync(CancellationToken.None);
        }

        return refusal;
    }

    /// <summary>A <c>400 validation-failed</c> answer, never recorded (<see cref="RefuseUnrecordedAsync"/>).</summary>
    public static Task<IResult> ValidationAsync(HttpContext context, Dictionary<string, string[]> errors)
        => RefuseUnrecordedAsync(context, Validation(errors));

    public static IResult Validation(Dictionary<string, string[]> errors) => Results.ValidationProblem(
        errors,
        detail: "The request is not valid: see errors. Amounts are positive integers in minor units (cents), currencies ISO 4217 codes such as EUR.",
        title: "Invalid request",
        type: TypeBase + "validation-failed");

    public static IResult Refused(LedgerRefusal refusal, string? detail) => refusal switch
    {
        LedgerRefusal.AccountNotFound => Results.Problem(detail, statusCode: StatusCodes.Status404NotFound, title: "Account not found", type: TypeBase + "account-not-found"),
        LedgerRefusal.CurrencyMismatch => Results.Problem(detail, statusCode: StatusCodes.Status422UnprocessableEntity, title: "Currency mismatch", type: TypeBase + "currency-mismatch"),
        LedgerRefusal.InsufficientFunds => Results.Problem(detail, statusCode: StatusCodes.Status422UnprocessableEntity, title: "Insufficient funds", type: TypeBase + "insufficient-funds"),
        _ => throw new ArgumentOutOfRangeException(nameof(refusal), refusal, "Not a refusal."),
    };

    /// <summary>
    /// The same refusal as <see cref="Refused"/>, as bytes to store in the money movement's transaction: a refused
    /// movement commits its answer (and nothing else), so a retry replays the refusal rather than trying again.
    /// </summary>
    public static Oncely.IdempotentResponse RefusedResponse(LedgerRefusal refusal, string? detail)
    {
        var (status, title, type) = refusal switch
        {
            LedgerRefusal.AccountNotFound => (StatusCodes.Status404NotFound, "Account not found", "account-not-found"),
            LedgerRefusal.CurrencyMismatch => (StatusCodes.Status422UnprocessableEntity, "Currency mismatch", "currency-mismatch"),
            LedgerRefusal.InsufficientFunds => (StatusCodes.Status422UnprocessableEntity, "Insufficient funds", "insufficient-funds"),
            _ => throw new ArgumentOutOfRangeException(nameof(refusal), refusal, "Not a refusal."),
        };
        var problem = new Microsoft.AspNetCore.Mvc.ProblemDetails { Type = TypeBase + type, Title = title, Status = status, Detail = detail };
        var body = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(problem, System.Text.Json.JsonSerializerOptions.Web);
        return new Oncely.IdempotentResponse(status, [new("Content-Type", "application/problem+json")], body);
    }

    public static IResult PaymentNotFound(string id) => Results.Problem(
        $"There is no payment '{id}'.",
        statusCode: StatusCodes.Status404NotFound,
        title: "Payment not found",
        type: TypeBase + "payment-not-found");

    public static IResult UnsupportedMediaType(string? contentType) => Results.Problem(
        UnsupportedMediaTypeDetail(contentType),
        statusCode: StatusCodes.Status415UnsupportedMediaType,
        title: "Unsupported media type",
        type: TypeBase + "unsupported-media-type");

    public static string UnsupportedMediaTypeDetail(string? contentType) =>
        $"The body must be JSON in UTF-8: send 'Content-Type: application/json' (optionally '; charset=utf-8'), not '{contentType}'.";

    public static IResult AccountNotFound(string id) => Refused(LedgerRefusal.AccountNotFound, $"There is no account '{id}'.");
}
