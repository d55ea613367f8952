using System.Data.Common;
using Oncely;
using Oncely.AspNetCore;
using Oncely.CrashTests.App;
using Oncely.PostgreSql;
using Oncely.Sqlite;

// Configuration comes from the environment: ONCELY_STORE (sqlite | postgresql), ONCELY_CONNECTION, ONCELY_LEASE_MS,
// and, for a run that must die, ONCELY_CRASH_AT (after-reservation | after-commit | between-phases | one-commit-after-reservation |
// one-commit-before-commit | one-commit-after-commit).
var kind = Environment.GetEnvironmentVariable("ONCELY_STORE") ?? throw new InvalidOperationException("Set ONCELY_STORE to sqlite or postgresql.");
var connectionString = Environment.GetEnvironmentVariable("ONCELY_CONNECTION") ?? throw new InvalidOperationException("Set ONCELY_CONNECTION.");
var leaseMs = int.Parse(Environment.GetEnvironmentVariable("ONCELY_LEASE_MS") ?? "2000", System.Globalization.CultureInfo.InvariantCulture);

var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
var idempotency = builder.Services.AddIdempotency(o =>
{
    o.Lease = TimeSpan.FromMilliseconds(leaseMs);

    // The claims here are about kills, not about a slow store: a loaded test machine must not turn a request into a
    // 503 before it reaches its crash point.
    o.StoreTimeout = TimeSpan.FromSeconds(60);
});
_ = kind switch
{
    "sqlite" => idempotency.UseSqlite(o =>
    {
        o.ConnectionString = connectionString;
        o.BusyTimeout = TimeSpan.FromSeconds(60);
    }),
    "postgresql" => idempotency.UsePostgreSql(o =>
    {
        o.ConnectionString = connectionString;
        o.CommandTimeout = TimeSpan.FromSeconds(60);
    }),
    _ => throw new InvalidOperationException($"Unknown ONCELY_STORE '{kind}'."),
};
var business = new BusinessDatabase(kind, connectionString);
builder.Services.AddSingleton(business);
if (Environment.GetEnvironmentVariable(CrashHook.Variable) is { Length: > 0 } crashAt)
{
    builder.Services.AddSingleton(new CrashHook(crashAt));
}

var app = builder.Build();
await business.CreateTablesAsync();
app.UseIdempotency();

app.MapGet("/health", () => Results.Text("ok"));

// The test binds port 0 and learns the real address from this line, so no other process can hold the port it talks to.
app.Lifetime.ApplicationStarted.Register(() =>
{
    Console.Out.WriteLine($"crash app listening on {app.Urls.Single()}");
    Console.Out.Flush();
});

// One phase: the ledger entry and the stored answer commit in one transaction.
app.MapPost("/transfers", async (HttpContext context, TransferRequest request, BusinessDatabase db) =>
{
    var crash = context.RequestServices.GetService<CrashHook>();
    var execution = context.GetIdempotencyExecution()!;
    var key = execution.Id.Key;
    var run = await db.CountRunAsync(key, "transfers");

    await using var connection = await db.OpenAsync(context.RequestAborted);
    await using var transaction = await connection.BeginTransactionAsync(context.RequestAborted);
    await BusinessDatabase.ExecuteAsync(connection, transaction, "INSERT INTO ledger (idem_key, entry, amount) VALUES (@k, 'debit', @a)", ("@k", key), ("@a", request.Amount));
    crash?.At("after-reservation");

    var response = IdempotentResponses.Json(201, new { key, amount = request.Amount, run, answerId = Guid.NewGuid() }, location: $"/transfers/{key}");
    await CompleteAsync(execution, transaction, response);
    await transaction.CommitAsync(context.RequestAborted);
    crash?.At("after-commit");
    return response.ToResult();
}).RequireIdempotencyKey().AllowAnonymousIdempotency();

// One commit: the reservation is the transaction's first statement, so the reservation, the ledger entry and the stored
// answer are one commit. A kill anywhere before the commit leaves nothing behind, not even a record.
app.MapPost("/one-commit-transfers", async (HttpContext context, TransferRequest request, BusinessDatabase db) =>
{
    var crash = context.RequestServices.GetService<CrashHook>();
    var execution = context.GetIdempotencyExecution()!;
    var key = execution.Id.Key;
    var run = await db.CountRunAsync(key, "one-commit");

    await using var connection = await db.OpenAsync(context.RequestAborted);
    await using var transaction = await connection.BeginTransactionAsync(context.RequestAborted);
    await execution.ReserveInTransactionAsync(transaction, context.RequestAborted);
    crash?.At("one-commit-after-reservation");
    await BusinessDatabase.ExecuteAsync(connection, transaction, "INSERT INTO ledger (idem_key, entry, amount) VALUES (@k, 'debit', @a)", ("@k", key), ("@a", request.Amount));
    var response = IdempotentResponses.Json(201, new { key, amount = request.Amount, run, answerId = Guid.NewGuid() }, location: $"/one-commit-transfers/{key}");
    await CompleteAsync(execution, transaction, response);
    crash?.At("one-commit-before-commit");
    await transaction.CommitAsync(context.RequestAborted);
    crash?.At("one-commit-after-commit");
    return response.ToResult();
}).RequireIdempotencyKey().AllowAnonymousIdempotency().WithOneCommitReservation();

// Two phases: (1) hold the funds locally, committed with recovery point "funds-held"; (2) call the bank with a key
// derived from the client's key, then record the settlement and the answer in one transaction.
app.MapPost("/two-phase-transfers", async (HttpContext context, TransferRequest request, BusinessDatabase db) =>
{
    var crash = context.RequestServices.GetService<CrashHook>();
    var execution = context.GetIdempotencyExecution()!;
    var key = execution.Id.Key;
    var run = await db.CountRunAsync(key, "two-phase");

    if (execution.RecoveryPoint != "funds-held")
    {
        await using var connection = await db.OpenAsync(context.RequestAborted);
        await using var transaction = await connection.BeginTransactionAsync(context.RequestAborted);
        await BusinessDatabase.ExecuteAsync(connection, transaction, "INSERT INTO ledger (idem_key, entry, amount) VALUES (@k, 'hold', @a)", ("@k", key), ("@a", request.Amount));
        await SetRecoveryPointAsync(execution, transaction, "funds-held");
        await transaction.CommitAsync(context.RequestAborted);
    }

    var bankKey = execution.DeriveKey("bank/transfer");
    var performed = await db.BankTransferAsync(bankKey, request.Amount);
    crash?.At("between-phases");

    await using (var connection = await db.OpenAsync(context.RequestAborted))
    await using (var transaction = await connection.BeginTransactionAsync(context.RequestAborted))
    {
        await BusinessDatabase.ExecuteAsync(connection, transaction, "INSERT INTO ledger (idem_key, entry, amount) VALUES (@k, 'settled', @a)", ("@k", key), ("@a", request.Amount));
        var response = IdempotentResponses.Json(201, new { key, run, resumedFrom = execution.ResumedFrom, bankKey, bankPerformedNow = performed });
        await CompleteAsync(execution, transaction, response);
        await transaction.CommitAsync(context.RequestAborted);
        return response.ToResult();
    }
}).RequireIdempotencyKey().AllowAnonymousIdempotency();

await app.RunAsync();

static ValueTask CompleteAsync(IdempotencyExecution execution, DbTransaction transaction, IdempotentResponse response)
    => execution.CompleteInTransactionAsync(transaction, response);

static ValueTask SetRecoveryPointAsync(IdempotencyExecution execution, DbTransaction transaction, string recoveryPoint)
    => execution.SetRecoveryPointInTransactionAsync(transaction, recoveryPoint);

internal sealed record TransferRequest(long Amount);
