using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;
using Oncely;
using Oncely.AspNetCore;

namespace Payments;

/// <summary>
/// The one place where a money movement hands its answer to Oncely inside its own database transaction.
/// </summary>
public static class LedgerTransaction
{
    /// <summary>
    /// Writes the idempotency record's completion (<paramref name="response"/>) into <paramref name="transaction"/>, so
    /// the ledger rows and the stored answer commit together or not at all. Call it just before committing.
    /// </summary>
    /// <remarks>
    /// Does nothing when the request is not idempotent (idempotency switched off) or when the configured store cannot
    /// join this driver's transaction yet: the middleware then stores the answer right after the handler returns, a few
    /// milliseconds after the commit. Once the SQLite and PostgreSQL stores implement
    /// <see cref="ITransactionalIdempotencyStore{TTransaction}"/>, make the fallback throw instead.
    /// </remarks>
    public static ValueTask CompleteAsync(HttpContext context, DbTransaction transaction, IdempotentResponse response, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(response);
        var execution = context.GetIdempotencyExecution();
        if (execution is null)
        {
            return ValueTask.CompletedTask;
        }

        var store = context.RequestServices.GetRequiredService<IIdempotencyStore>();
        return transaction switch
        {
            SqliteTransaction sqlite when store is ITransactionalIdempotencyStore<SqliteTransaction> => execution.CompleteInTransactionAsync(sqlite, response, cancellationToken),
            NpgsqlTransaction npgsql when store is ITransactionalIdempotencyStore<NpgsqlTransaction> => execution.CompleteInTransactionAsync(npgsql, response, cancellationToken),
            _ => ValueTask.CompletedTask,
        };
    }
}
