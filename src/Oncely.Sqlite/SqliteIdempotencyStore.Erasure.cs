using Microsoft.Data.Sqlite;

namespace Oncely.Sqlite;

// Erasure (IIdempotencyStoreErasure). Records go in batches, each its own write transaction, so other writers wait at
// most one batch; each DELETE carries the state condition (Completed or expired), and a write transaction holds SQLite's
// single writer lock, so no reservation or completion interleaves with a batch. The last batch (the one that comes back
// short) lists the InProgress records in the same transaction: the report is exact at that instant.
internal sealed partial class SqliteIdempotencyStore : IIdempotencyStoreErasure
{
    private const int EraseBatch = 1000;

    /// <inheritdoc />
    public ValueTask<IdempotencyErasureResult> EraseTenantAsync(string tenant, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        return EraseAsync(tenant, null, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<IdempotencyErasureResult> EraseKeyAsync(string tenant, string key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentException.ThrowIfNullOrEmpty(key);
        return EraseAsync(tenant, key, cancellationToken);
    }

    private async ValueTask<IdempotencyErasureResult> EraseAsync(string tenant, string? key, CancellationToken cancellationToken)
    {
        var scope = key is null ? "tenant = @tenant" : "tenant = @tenant AND idem_key = @key";
        var erase = new Erasure(
            $"""DELETE FROM "{_table}" WHERE id IN (SELECT id FROM "{_table}" WHERE {scope} AND (state = 1 OR expires_at <= @now) LIMIT @batch);""",
            $"""SELECT {SummaryColumns} FROM "{_table}" WHERE {scope} AND state = 0 AND expires_at > @now {NewestFirst};""",
            $"""DELETE FROM "{_auditTable}" WHERE {scope} AND operation <> @erasure;""",
            tenant,
            key);
        var erased = 0;
        while (true)
        {
            var (deleted, inProgress) = await WriteAsync(
                (store: this, erase),
                static async (connection, s, ct) =>
                {
                    var now = s.store.Now();
                    int count;
                    using (var delete = s.erase.Command(connection, s.erase.DeleteRecords, now))
                    {
                        delete.Parameters.AddWithValue("@batch", EraseBatch);
                        count = await delete.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                    }

                    if (count == EraseBatch)
                    {
                        return (count, (List<IdempotencyRecordSummary>?)null);
                    }

                    using var list = s.erase.Command(connection, s.erase.ListInProgress, now);
                    return (count, await ReadSummariesAsync(list, ct).ConfigureAwait(false));
                },
                cancellationToken).ConfigureAwait(false);
            erased += deleted;
            if (inProgress is not null)
            {
                var audit = await WriteAsync(
                    (store: this, erase),
                    static async (connection, s, ct) =>
                    {
                        using var delete = s.erase.Command(connection, s.erase.DeleteAudit, s.store.Now());
                        delete.Parameters.AddWithValue("@erasure", IdempotencyEraser.AuditOperation);
                        return await delete.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                    },
                    cancellationToken).ConfigureAwait(false);
                return new IdempotencyErasureResult(erased, audit, inProgress);
            }
        }
    }

    /// <summary>The statements of one erasure, with the scope's values.</summary>
    private sealed record Erasure(string DeleteRecords, string ListInProgress, string DeleteAudit, string Tenant, string? Key)
    {
        public SqliteCommand Command(SqliteConnection connection, string sql, long now)
        {
            var command = SqliteDatabase.CreateCommand(connection, sql);
            command.Parameters.AddWithValue("@tenant", Tenant);
            if (Key is not null)
            {
                command.Parameters.AddWithValue("@key", Key);
            }

            if (sql.Contains("@now", StringComparison.Ordinal))
            {
                command.Parameters.AddWithValue("@now", now);
            }

            return command;
        }
    }
}
