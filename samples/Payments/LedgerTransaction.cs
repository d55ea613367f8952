using System.Data.Common;
using Oncely;
using Oncely.AspNetCore;
using Payments.Ledger;

namespace Payments;

/// <summary>
/// The one place where a money movement meets Oncely inside its own database transaction: the reservation first
/// (one-commit endpoints), the answer last.
/// </summary>
public static class LedgerTransaction
{
    /// <summary>
    /// Reserves the idempotency record inside <paramref name="transaction"/>, for the endpoints in one-commit mode
    /// (<c>WithOneCommitReservation</c>): call it as the transaction's first statement, so the reservation, the ledger
    /// rows and the stored answer commit once. A duplicate of a request still in flight waits here for that request's
    /// transaction and then gets its answer: the exception this throws then must leave the handler (the transaction
    /// rolls back and the middleware replays). Does nothing on endpoints whose record the middleware already reserved,
    /// or when the request is not idempotent.
    /// </summary>
    public static ValueTask ReserveAsync(HttpContext context, DbTransaction transaction, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(transaction);
        return context.GetIdempotencyExecution() is { } execution
            ? execution.ReserveInTransactionAsync(transaction, cancellationToken)
            : ValueTask.CompletedTask;
    }

    /// <summary>
    /// Stores the answer (<paramref name="response"/>) in <paramref name="write"/>'s transaction and commits it, so the
    /// ledger rows and the stored answer commit together or not at all, in one round trip where the store can
    /// (<c>execution.CompleteAndCommitAsync</c>: PostgreSQL sends the completion and <c>COMMIT</c> as one batch; SQLite
    /// writes the completion, then commits). The end of every money movement.
    /// </summary>
    /// <remarks>
    /// Only commits when the request is not idempotent (idempotency switched off), or when the records are in Redis
    /// (<c>Payments:IdempotencyStore=Redis</c>: the middleware stores the answer after the commit). Otherwise the configured
    /// store must join this driver's transaction (the SQLite and PostgreSQL stores do, when the ledger and the records
    /// share one database): a store that cannot is a configuration error, refused rather than silently storing the answer
    /// after the commit, which would reopen the crash window between the money movement and its record.
    /// </remarks>
    public static Task CompleteAndCommitAsync(HttpContext context, LedgerWrite write, IdempotentResponse response, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(write);
        ArgumentNullException.ThrowIfNull(response);
        var execution = context.GetIdempotencyExecution();

        // Records in Redis (Payments:IdempotencyStore=Redis): no transaction to join. The middleware stores the answer
        // after the ledger commits; a crash between the two leaves the record InProgress (README.md, "Records in Redis").
        if (execution is null || context.RequestServices.GetService<PaymentsSettings>() is { CompletesInLedgerTransaction: false })
        {
            return write.CommitAsync(cancellationToken);
        }

        // The store checks the transaction's runtime type (SqliteTransaction / NpgsqlTransaction) and throws
        // InvalidOperationException, saying what it needs, when it cannot join it.
        return write.CommitWithAsync((transaction, ct) => execution.CompleteAndCommitAsync(transaction, response, ct), cancellationToken);
    }
}
