using System.Security.Claims;
using Oncely.AspNetCore;
using Payments.Ledger;

namespace Payments;

public sealed record CreateAccountRequest(string? Name, string? Currency);

public sealed record DepositRequest(long? Amount);

public sealed record PaymentRequest(string? From, string? To, long? Amount, string? Currency, string? Reference);

/// <summary>
/// The API. Every POST moves or creates something, so each requires an <c>Idempotency-Key</c>; each runs in one
/// database transaction and hands its answer to Oncely inside that transaction before committing. Money movements
/// (deposits, payments) also reserve their record inside that transaction, as its first statement: one commit each.
/// </summary>
public static class PaymentEndpoints
{
    // 10^15 minor units: far above any real payment, far below overflow of a 64-bit balance.
    private const long MaxAmount = 1_000_000_000_000_000;

    public static void Map(WebApplication app, bool idempotent, bool oneCommit = true)
    {
        ArgumentNullException.ThrowIfNull(app);

        // The answers each endpoint really gives, for the OpenAPI document (handlers return IResult, which says nothing):
        // the success with its body type, and the sample's own problems. Oncely's transformer adds its refusals.
        Effectful(app.MapPost("/accounts", CreateAccountAsync), idempotent, oneCommit: false)
            .Produces<Account>(StatusCodes.Status201Created)
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        Effectful(app.MapPost("/accounts/{id}/deposits", DepositAsync), idempotent, oneCommit)
            .Produces<Deposit>(StatusCodes.Status201Created)
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        Effectful(app.MapPost("/payments", PayAsync), idempotent, oneCommit)
            .Produces<Payment>(StatusCodes.Status201Created)
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity);
        Authenticated(app.MapGet("/accounts/{id}", GetAccountAsync))
            .Produces<Account>()
            .ProducesProblem(StatusCodes.Status404NotFound);
        Authenticated(app.MapGet("/payments/{id}", GetPaymentAsync))
            .Produces<Payment>()
            .ProducesProblem(StatusCodes.Status404NotFound);
    }

    // Every endpoint here needs a tenant's API key: 401 without one, 403 with an operator's.
    internal static RouteHandlerBuilder Authenticated(RouteHandlerBuilder endpoint)
        => endpoint.ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status403Forbidden);

    // Money movements run in one-commit mode: the record is reserved inside the movement's own transaction, so a
    // deposit or a payment costs one commit. Creating an account keeps the default mode (reserved, then committed).
    internal static RouteHandlerBuilder Effectful(RouteHandlerBuilder endpoint, bool idempotent, bool oneCommit)
    {
        if (idempotent)
        {
            endpoint.RequireIdempotencyKey();
            if (oneCommit)
            {
                endpoint.WithOneCommitReservation();
            }
        }

        return Authenticated(endpoint);
    }

    private static async Task<IResult> CreateAccountAsync(CreateAccountRequest body, HttpContext context, LedgerRepository ledger, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrWhiteSpace(body.Name) || body.Name.Length > 100)
        {
            errors["name"] = ["Give the account a name of 1 to 100 characters."];
        }

        CheckCurrency(body.Currency, errors);
        if (errors.Count > 0)
        {
            return await PaymentProblems.ValidationAsync(context, errors);
        }

        await using var write = await ledger.BeginAsync(cancellationToken);
        await LedgerTransaction.ReserveAsync(context, write.Transaction, cancellationToken);
        var account = await write.CreateAccountAsync(Tenant(context), body.Name!.Trim(), body.Currency!, cancellationToken);
        return await CommitAsync(context, write, IdempotentResponses.Json(StatusCodes.Status201Created, account, $"/accounts/{account.Id}"), cancellationToken);
    }

    private static async Task<IResult> DepositAsync(string id, DepositRequest body, HttpContext context, LedgerRepository ledger, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        CheckAmount(body.Amount, errors);
        if (errors.Count > 0)
        {
            return await PaymentProblems.ValidationAsync(context, errors);
        }

        await using var write = await ledger.BeginAsync(cancellationToken);
        await LedgerTransaction.ReserveAsync(context, write.Transaction, cancellationToken);
        var result = await write.DepositAsync(Tenant(context), id, body.Amount!.Value, cancellationToken);
        if (result.Value is not { } deposit)
        {
            return await CommitAsync(context, write, PaymentProblems.RefusedResponse(result.Refusal, result.Detail), cancellationToken);
        }

        return await CommitAsync(context, write, IdempotentResponses.Json(StatusCodes.Status201Created, deposit, $"/accounts/{id}"), cancellationToken);
    }

    private static async Task<IResult> PayAsync(PaymentRequest body, HttpContext context, LedgerRepository ledger, CancellationToken cancellationToken)
    {
        var errors = ValidatePayment(body);
        if (errors.Count > 0)
        {
            return await PaymentProblems.ValidationAsync(context, errors);
        }

        await using var write = await ledger.BeginAsync(cancellationToken);
        await LedgerTransaction.ReserveAsync(context, write.Transaction, cancellationToken);
        var result = await write.TransferAsync(Tenant(context), body.From!, body.To!, body.Amount!.Value, body.Currency!, body.Reference, cancellationToken);
        if (result.Value is not { } payment)
        {
            return await CommitAsync(context, write, PaymentProblems.RefusedResponse(result.Refusal, result.Detail), cancellationToken);
        }

        return await CommitAsync(context, write, IdempotentResponses.Json(StatusCodes.Status201Created, payment, $"/payments/{payment.Id}"), cancellationToken);
    }

    private static async Task<IResult> GetAccountAsync(string id, HttpContext context, LedgerRepository ledger, CancellationToken cancellationToken)
        => await ledger.GetAccountAsync(Tenant(context), id, cancellationToken) is { } account
            ? Results.Ok(account)
            : PaymentProblems.AccountNotFound(id);

    private static async Task<IResult> GetPaymentAsync(string id, HttpContext context, LedgerRepository ledger, CancellationToken cancellationToken)
        => await ledger.GetPaymentAsync(Tenant(context), id, cancellationToken) is { } payment
            ? Results.Ok(payment)
            : PaymentProblems.PaymentNotFound(id);

    // The end of every money movement: the answer is built first, stored in the same transaction (where the store can),
    // the transaction commits, and exactly those bytes go to the client.
    private static async Task<IResult> CommitAsync(HttpContext context, LedgerWrite write, Oncely.IdempotentResponse response, CancellationToken cancellationToken)
    {
        if (context.RequestServices.GetService<DemoFaults>() is { } faults)
        {
            faults.BeforeCommit(context);
        }

        await LedgerTransaction.CompleteAndCommitAsync(context, write, response, cancellationToken);
        return response.ToResult();
    }

    /// <summary>The checks of a money movement between two of a tenant's accounts (a payment, a payout request).</summary>
    internal static Dictionary<string, string[]> ValidatePayment(PaymentRequest body)
    {
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrWhiteSpace(body.From))
        {
            errors["from"] = ["Give the id of the account to pay from."];
        }

        if (string.IsNullOrWhiteSpace(body.To))
        {
            errors["to"] = ["Give the id of the account to pay to."];
        }
        else if (string.Equals(body.From, body.To, StringComparison.Ordinal))
        {
            errors["to"] = ["A payment needs two different accounts."];
        }

        CheckAmount(body.Amount, errors);
        CheckCurrency(body.Currency, errors);
        if (body.Reference is { Length: > 100 })
        {
            errors["reference"] = ["A reference has at most 100 characters."];
        }

        return errors;
    }

    internal static string Tenant(HttpContext context)
        => context.User.FindFirstValue(ClaimTypes.NameIdentifier) ?? throw new InvalidOperationException("The request is not authenticated.");

    private static void CheckAmount(long? amount, Dictionary<string, string[]> errors)
    {
        if (amount is null or <= 0 or > MaxAmount)
        {
            errors["amount"] = ["The amount must be a positive integer in minor units (250 means 2.50), at most 10^15."];
        }
    }

    private static void CheckCurrency(string? currency, Dictionary<string, string[]> errors)
    {
        if (currency is not { Length: 3 } || !currency.All(char.IsAsciiLetterUpper))
        {
            errors["currency"] = ["The currency must be a three-letter upper-case ISO 4217 code such as EUR."];
        }
    }
}
