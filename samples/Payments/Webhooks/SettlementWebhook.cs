using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Oncely;
using Oncely.AspNetCore;
using Oncely.Webhooks;
using Payments.Ledger;
using StandardWebhooks;
using StandardWebhooks.Diagnostics;

namespace Payments.Webhooks;

/// <summary>A settlement event as the card provider sends it (Standard Webhooks payload shape).</summary>
public sealed record SettlementEvent(string? Type, DateTimeOffset? Timestamp, SettlementData? Data);

/// <param name="Payment">The provider's id of the payment that settled.</param>
/// <param name="Account">Our account the money goes to.</param>
/// <param name="Amount">Minor units.</param>
/// <param name="Currency">ISO 4217 code.</param>
public sealed record SettlementData(string? Payment, string? Account, long? Amount, string? Currency);

/// <summary>
/// <c>POST /webhooks/settlements</c>: the simulated card provider reports that a payment has settled, and the sample
/// credits the account, exactly once per delivery id. The provider signs every delivery (Standard Webhooks) and delivers
/// at least once: after a timeout, after any non-2xx answer, and sometimes twice at the same time. With Oncely
/// (<c>AcceptStandardWebhooks</c>) the signature is checked before anything is recorded, the <c>webhook-id</c> is the key
/// and the provider is the tenant; the credit, the reservation and the stored answer commit in one ledger transaction.
/// Without Oncely (the demo's "without" run) the signature is checked by the <c>StandardWebhooks</c> package and every
/// delivery is booked.
/// </summary>
public static class SettlementWebhook
{
    /// <summary>The provider's name: the configured sender and the tenant of its records.</summary>
    public const string Sender = "card-provider";

    public const string Path = "/webhooks/settlements";

    /// <summary>Where the provider's secrets are configured: <c>Payments:Webhooks</c> binds to <see cref="StandardWebhooksOptions"/>.</summary>
    public const string Section = "Payments:Webhooks";

    private const int MaxBody = 64 * 1024;

    /// <summary>Whether the provider has a secret configured; without one the endpoint is not mapped.</summary>
    public static bool IsConfigured(IConfiguration configuration)
        => configuration.GetSection($"{Section}:Senders:{Sender}:Secrets").GetChildren().Any(s => !string.IsNullOrWhiteSpace(s.Value));

    /// <summary>The settlements table, created once the ledger's own tables exist.</summary>
    public static void AddServices(IServiceCollection services)
        => services.AddHostedService<SettlementSchemaInitializer>();

    /// <summary>Oncely's Standard Webhooks verification, with the secrets of <c>Payments:Webhooks</c>.</summary>
    public static void AddVerification(IIdempotencyBuilder idempotency, IConfiguration configuration)
        => idempotency.AddStandardWebhooks(options => configuration.GetSection(Section).Bind(options));

    public static void Map(WebApplication app, bool idempotent, bool oneCommit)
    {
        ArgumentNullException.ThrowIfNull(app);
        if (!IsConfigured(app.Configuration))
        {
            return;
        }

        var endpoint = app.MapPost(Path, SettleAsync)
            .Accepts<SettlementEvent>("application/json")
            .Produces<Settlement>()
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .AllowAnonymous(); // the provider is not an API-key caller: its signature authenticates it
        if (idempotent)
        {
            endpoint.AcceptStandardWebhooks(Sender);
            if (oneCommit)
            {
                endpoint.WithOneCommitReservation();
            }
        }
    }

    private static async Task<IResult> SettleAsync(HttpContext context, LedgerRepository ledger, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json, CancellationToken cancellationToken)
    {
        // With Oncely the body was read, verified and fingerprinted already; these are the same bytes.
        var body = await JsonBodies.ReadCappedAsync(context.Request, MaxBody, cancellationToken);
        if (body is null)
        {
            return await PaymentProblems.RefuseUnrecordedAsync(context, Results.Problem("A settlement event has at most 64 KiB.", statusCode: StatusCodes.Status413PayloadTooLarge, title: "Event too large", type: PaymentProblems.TypeBase + "event-too-large"));
        }

        if (context.GetIdempotencyExecution() is null && !UnverifiedSignatureIsValid(context, body))
        {
            return Results.Problem("The webhook signature does not match the provider's secret.", statusCode: StatusCodes.Status401Unauthorized, title: "Webhook signature invalid", type: PaymentProblems.TypeBase + "webhook-signature-invalid");
        }

        SettlementEvent? settlement;
        try
        {
            settlement = JsonSerializer.Deserialize<SettlementEvent>(body, json.Value.SerializerOptions);
        }
        catch (JsonException)
        {
            settlement = null;
        }

        var errors = Validate(settlement);
        if (errors.Count > 0)
        {
            return await PaymentProblems.ValidationAsync(context, errors);
        }

        var data = settlement!.Data!;
        await using var write = await ledger.BeginAsync(cancellationToken);
        await LedgerTransaction.ReserveAsync(context, write.Transaction, cancellationToken);
        var result = await write.SettleAsync(Sender, data.Payment!, data.Account!, data.Amount!.Value, data.Currency!, cancellationToken);
        var response = result.Value is { } booked
            ? IdempotentResponses.Json(StatusCodes.Status200OK, booked)
            : PaymentProblems.RefusedResponse(result.Refusal, result.Detail);

        // The credit, the reservation and the stored answer commit together, or none of them does.
        await LedgerTransaction.CompleteAndCommitAsync(context, write, response, cancellationToken);
        return response.ToResult();
    }

    private static Dictionary<string, string[]> Validate(SettlementEvent? settlement)
    {
        var errors = new Dictionary<string, string[]>();
        if (settlement is not { Type: "payment.settled", Data: { } data })
        {
            errors["type"] = ["Send a JSON object with \"type\": \"payment.settled\" and a \"data\" object."];
            return errors;
        }

        if (string.IsNullOrWhiteSpace(data.Payment) || data.Payment.Length > 100)
        {
            errors["data.payment"] = ["Give the provider's payment id (1 to 100 characters)."];
        }

        if (string.IsNullOrWhiteSpace(data.Account))
        {
            errors["data.account"] = ["Give the id of the account to credit."];
        }

        if (data.Amount is null or <= 0 or > 1_000_000_000_000_000)
        {
            errors["data.amount"] = ["The amount must be a positive integer in minor units, at most 10^15."];
        }

        if (data.Currency is not { Length: 3 } || !data.Currency.All(char.IsAsciiLetterUpper))
        {
            errors["data.currency"] = ["The currency must be a three-letter upper-case ISO 4217 code such as EUR."];
        }

        return errors;
    }

    // The "without Oncely" run only: what a receiver would do on its own, with the StandardWebhooks package.
    private static bool UnverifiedSignatureIsValid(HttpContext context, byte[] body)
    {
        var payload = Encoding.UTF8.GetString(body);
        foreach (var secret in context.RequestServices.GetRequiredService<IConfiguration>().GetSection($"{Section}:Senders:{Sender}:Secrets").GetChildren())
        {
            try
            {
                new StandardWebhook(secret.Value!).Verify(payload, context.Request.Headers);
                return true;
            }
            catch (Exception e) when (e is WebhookVerificationException or ArgumentException or FormatException)
            {
            }
        }

        return false;
    }

    private sealed class SettlementSchemaInitializer(LedgerRepository ledger) : IHostedService
    {
        public async Task StartAsync(CancellationToken cancellationToken)
        {
            await ledger.EnsureSchemaAsync(cancellationToken);
            await using var connection = await ledger.Dialect.OpenAsync(cancellationToken);
            foreach (var statement in LedgerWrite.SettlementSchema)
            {
                await using var command = Sql.Command(connection, null, statement);
                await command.ExecuteNonQueryAsync(cancellationToken);
            }
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
