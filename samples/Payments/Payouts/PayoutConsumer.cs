using MassTransit;
using Oncely.MassTransit;
using Payments.Ledger;

namespace Payments.Payouts;

/// <summary>
/// Moves a payout's money on the ledger exactly once: the ledger rows and the idempotency record's completion commit
/// in one transaction, so a crash between the commit and the broker's acknowledgement finds the record Completed on
/// redelivery and the message is acknowledged without moving money again.
/// </summary>
public sealed partial class PayoutConsumer(LedgerRepository ledger, PayoutRuns runs, PaymentsSettings settings, ILogger<PayoutConsumer> logger) : IConsumer<PayoutRequested>
{
    public async Task Consume(ConsumeContext<PayoutRequested> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        runs.Increment();
        var tenant = context.Headers.Get<string>(PayoutMessaging.TenantHeader);
        var payout = context.Message;
        if (string.IsNullOrEmpty(tenant))
        {
            // Without idempotency nothing else checks the header; with it, the filter refuses such a message first.
            throw new InvalidOperationException($"A payout message needs the {PayoutMessaging.TenantHeader} header.");
        }

        await using var write = await ledger.BeginAsync(context.CancellationToken);
        var result = await write.TransferAsync(tenant, payout.From, payout.To, payout.Amount, payout.Currency, payout.Reference, context.CancellationToken);
        if (result.Value is null)
        {
            // A refusal (unknown account, insufficient funds) is the payout's final answer: recorded like a success, so a
            // redelivery does not try again, and logged for the back office.
            LogRefused(logger, payout.Reference, result.Refusal, result.Detail);
        }

        if (settings.CompletesInLedgerTransaction)
        {
            await context.CompleteIdempotencyInTransactionAsync(write.Transaction, context.CancellationToken);
        }

        // With the records in Redis, the filter stores the completion after this commit (README.md, "Records in Redis").
        await write.CommitAsync(context.CancellationToken);
    }

    [LoggerMessage(1, LogLevel.Warning, "Payout {Reference} was refused: {Refusal} ({Detail})")]
    private static partial void LogRefused(ILogger logger, string? reference, LedgerRefusal refusal, string? detail);
}

/// <summary>How many times the payout consumer ran (the demo compares it with the deliveries).</summary>
public sealed class PayoutRuns
{
    private int _count;

    public int Count => Volatile.Read(ref _count);

    public void Increment() => Interlocked.Increment(ref _count);
}
