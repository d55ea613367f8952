using Npgsql;
using NpgsqlTypes;

namespace Oncely.PostgreSql;

/// <summary>
/// Erasure (<see cref="IIdempotencyStoreErasure"/>), in batches of one statement each. A batch deletes records of the
/// scope that are Completed or expired, with that condition on the <c>DELETE</c> itself: under READ COMMITTED a row that
/// a concurrent transaction changed is checked again in its new version, so a record that a reservation or take-over
/// turned InProgress is never deleted. The same statement reads the scope's InProgress records from its own snapshot,
/// without the rows it deleted, so the batch that comes back short reports exactly what was kept. "Expired" is judged
/// at one instant per statement (<c>now()</c>, the server's clock at the statement's start), so the deletion and the
/// report agree on it.
/// </summary>
internal sealed partial class PostgreSqlIdempotencyStore : IIdempotencyStoreErasure
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
        var batchSql = $"""
            WITH gone AS (
                DELETE FROM {Schema.Table}
                WHERE (tenant, operation, idem_key) IN (
                        SELECT tenant, operation, idem_key FROM {Schema.Table}
                        WHERE {scope} AND (state = 1 OR expires_at <= now())
                        LIMIT @limit)
                  AND (state = 1 OR expires_at <= now())
                RETURNING operation, idem_key),
            kept AS (
                SELECT {SummaryColumns} FROM {Schema.Table}
                WHERE {scope} AND state = 0 AND expires_at > now()
                  AND (operation, idem_key) NOT IN (SELECT operation, idem_key FROM gone))
            SELECT erased.n, kept.* FROM (SELECT count(*)::int AS n FROM gone) AS erased LEFT JOIN kept ON true
            {NewestFirst}
            """;
        var erased = 0;
        while (true)
        {
            var command = _statements.Create(batchSql);
            AddText(command, "tenant", tenant);
            AddText(command, "key", key);
            command.Parameters.Add(new NpgsqlParameter<int>("limit", NpgsqlDbType.Integer) { TypedValue = EraseBatch });
            var (deleted, inProgress) = await RunAsync("erase records", command, ReadErasureBatchAsync, cancellationToken).ConfigureAwait(false);
            erased += deleted;
            if (deleted < EraseBatch)
            {
                var audit = _statements.Create($"DELETE FROM {Schema.AuditTable} WHERE {scope} AND operation <> @erasure");
                AddText(audit, "tenant", tenant);
                AddText(audit, "key", key);
                AddText(audit, "erasure", IdempotencyEraser.AuditOperation);
                var auditErased = await RunAsync("erase audit entries", audit, _statements.Execute, cancellationToken).ConfigureAwait(false);
                return new IdempotencyErasureResult(erased, auditErased, inProgress);
            }
        }
    }

    // Column 0: how many records the batch deleted (on every row); then the summary columns of one kept InProgress
    // record, or nulls when none was kept.
    private static async ValueTask<(int Erased, List<IdempotencyRecordSummary> InProgress)> ReadErasureBatchAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        using var owned = command;
        var erased = 0;
        var records = new List<IdempotencyRecordSummary>();
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                erased = reader.GetInt32(0);
                if (reader.IsDBNull(1))
                {
                    continue;
                }

                records.Add(new IdempotencyRecordSummary(
                    new IdempotencyRecordId(reader.GetString(1), reader.GetString(2), reader.GetString(3)),
                    IdempotencyRecordState.InProgress,
                    reader.GetInt64(5),
                    reader.GetString(6),
                    reader.GetFieldValue<DateTimeOffset>(7),
                    reader.GetFieldValue<DateTimeOffset>(8),
                    reader.GetFieldValue<DateTimeOffset>(9),
                    reader.IsDBNull(10) ? null : reader.GetString(10),
                    null,
                    reader.GetInt32(12)));
            }
        }

        return (erased, records);
    }
}
