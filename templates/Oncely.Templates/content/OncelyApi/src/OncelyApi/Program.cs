using System.Collections.Concurrent;
using System.Security.Claims;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.OpenApi;
using Oncely.AspNetCore;
using Oncely.Sqlite;

var builder = WebApplication.CreateBuilder(args);

// 1. Who is calling: JWT bearer tokens (`dotnet user-jwts create` makes one for development). Idempotency records are
//    scoped per caller, so one caller can never replay another's answer.
builder.Services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer();
builder.Services.AddAuthorization();

// 2. Idempotency: records in a SQLite file (ConnectionStrings:Idempotency), kept 24 hours.
builder.Services.AddIdempotency(options => options.Expiration = TimeSpan.FromHours(24))
    .UseSqlite(builder.Configuration.GetConnectionString("Idempotency") ?? "Data Source=idempotency.db");

// 3. The OpenAPI document (with the Idempotency-Key header and Oncely's answers) and a health check on the store.
builder.Services.AddOpenApi(options => options.AddIdempotencyTransformer());
builder.Services.AddHealthChecks().AddIdempotencyStore();

builder.Services.AddSingleton<PaymentLedger>();

var app = builder.Build();

// The order matters: authentication first (the caller is known), then idempotency (refusals are never stored).
app.UseAuthentication();
app.UseAuthorization();
app.UseIdempotency();

app.MapOpenApi().AllowAnonymous();   // /openapi/v1.json
app.MapHealthChecks("/health").AllowAnonymous();

app.MapPost("/payments", (PaymentRequest request, ClaimsPrincipal user, PaymentLedger ledger) =>
    {
        if (request.Amount <= 0 || string.IsNullOrWhiteSpace(request.Currency))
        {
            return Results.ValidationProblem(new Dictionary<string, string[]> { ["amount"] = ["Amount must be positive and a currency given."] });
        }

        // The effect that must happen once: here a ledger entry; in your app the card provider's charge.
        var payment = ledger.Charge(user.Identity?.Name ?? "unknown", request.Amount, request.Currency);
        return Results.Created($"/payments/{payment.Id}", payment);
    })
    .RequireAuthorization()
    .RequireIdempotencyKey();

app.MapGet("/payments/{id:guid}", (Guid id, PaymentLedger ledger) =>
        ledger.Find(id) is { } payment ? Results.Ok(payment) : Results.NotFound())
    .RequireAuthorization();

app.Run();

/// <summary>A charge request.</summary>
public sealed record PaymentRequest(long Amount, string Currency);

/// <summary>A payment made.</summary>
public sealed record Payment(Guid Id, string Payer, long Amount, string Currency, DateTimeOffset CreatedAt);

/// <summary>Stands for your payment provider and database: every charge it makes is one entry.</summary>
public sealed class PaymentLedger
{
    private readonly ConcurrentDictionary<Guid, Payment> _payments = new();

    /// <summary>How many charges were made.</summary>
    public int Count => _payments.Count;

    /// <summary>Makes a charge.</summary>
    public Payment Charge(string payer, long amount, string currency)
    {
        var payment = new Payment(Guid.NewGuid(), payer, amount, currency, DateTimeOffset.UtcNow);
        _payments[payment.Id] = payment;
        return payment;
    }

    /// <summary>A payment by id.</summary>
    public Payment? Find(Guid id) => _payments.TryGetValue(id, out var payment) ? payment : null;
}
