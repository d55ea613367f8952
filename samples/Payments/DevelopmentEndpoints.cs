using System.Security.Claims;
using Microsoft.Extensions.Options;
using Oncely;
using Oncely.AspNetCore;

namespace Payments;

/// <summary>
/// Endpoints that exist only in the Development environment (<c>--environment=Development</c>), for the README's
/// walkthroughs; never mapped anywhere else, so they answer <c>404</c> in Production.
/// </summary>
public static class DevelopmentEndpoints
{
    /// <summary>
    /// <c>POST /dev/stuck-keys/accounts?key=…</c> with the body of an account creation: reserves the caller's
    /// <c>POST /accounts</c> record for that key and body, and leaves it InProgress with a lease of
    /// <see cref="StuckLease"/>, as a worker that reserved the key and then died would. The client's
    /// <c>POST /accounts</c> with that key and body then gets <c>409</c> until an operator releases the record.
    /// </summary>
    public const string StuckAccountPath = "/dev/stuck-keys/accounts";

    /// <summary>
    /// <c>GET /dev/effects/accounts</c>: the number of accounts the caller's tenant has, as a bare JSON number. An effects
    /// counter for <c>oncely-check --effects-url</c> (docs/check.md), which counts executions of <c>POST /accounts</c>
    /// instead of trusting the answers.
    /// </summary>
    public const string AccountEffectsPath = "/dev/effects/accounts";

    /// <summary>Long enough to follow the operator walkthrough; a real worker's lease is Oncely's <c>Lease</c> (30 s).</summary>
    public static readonly TimeSpan StuckLease = TimeSpan.FromMinutes(10);

    private const string Operation = "POST /accounts";
    private const int MaxBody = 64 * 1024;

    public static void Map(WebApplication app, bool idempotent)
    {
        ArgumentNullException.ThrowIfNull(app);
        if (!idempotent || !app.Environment.IsDevelopment())
        {
            return;
        }

        app.MapPost(StuckAccountPath, StrandAccountCreationAsync).ExcludeFromDescription();
        app.MapGet(AccountEffectsPath, CountAccountsAsync).ExcludeFromDescription();
    }

    private static async Task<IResult> CountAccountsAsync(HttpContext context, Ledger.LedgerRepository ledger, CancellationToken cancellationToken)
        => Results.Json(await ledger.CountAccountsAsync(context.User.FindFirstValue(ClaimTypes.NameIdentifier)!, cancellationToken));

    private static async Task<IResult> StrandAccountCreationAsync(string? key, HttpContext context, IIdempotencyStore store, IOptions<IdempotencyOptions> options, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(key) || key.Length > options.Value.MaxKeyLength || !key.All(c => c is >= '!' and <= '~'))
        {
            return PaymentProblems.Validation(new() { ["key"] = [$"Give the Idempotency-Key to leave stuck in the query: ?key=walkthrough-carol (1 to {options.Value.MaxKeyLength} visible ASCII characters)."] });
        }

        var body = await JsonBodies.ReadCappedAsync(context.Request, MaxBody, cancellationToken);
        if (body is null || body.Length == 0)
        {
            return PaymentProblems.Validation(new() { ["body"] = ["Send the account creation's JSON body (at most 64 KiB), as the client will send it."] });
        }

        // The fingerprint the middleware computes for the same POST /accounts (this sample fingerprints no headers).
        var tenant = context.User.FindFirstValue(ClaimTypes.NameIdentifier)!;
        var fingerprint = RequestFingerprint.Compute(new FingerprintInput("POST", "/accounts") { ContentType = context.Request.ContentType, Body = body });
        var held = await store.TryReserveAsync(new IdempotencyRecordId(tenant, Operation, key), fingerprint, StuckLease, options.Value.Expiration, cancellationToken);
        if (held.Outcome != ReservationOutcome.Acquired)
        {
            return Results.Problem(
                $"Tenant '{tenant}' already has a record for '{Operation}' under key '{key}' ({held.Record.State}): use another key.",
                statusCode: StatusCodes.Status409Conflict,
                title: "Key already recorded",
                type: PaymentProblems.TypeBase + "key-already-recorded");
        }

        var record = held.Record;
        return Results.Json(
            new { tenant, operation = Operation, key, state = record.State.ToString(), fencingToken = record.FencingToken, leaseExpiresAt = record.LeaseExpiresAt },
            statusCode: StatusCodes.Status201Created);
    }
}
