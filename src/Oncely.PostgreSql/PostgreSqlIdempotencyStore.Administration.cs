using Npgsql;
using NpgsqlTypes;

namespace Oncely.PostgreSql;

/// <summary>
/// The operator API's reads (<see cref="IIdempotencyStoreAdministration"/>): plain <c>SELECT</c>s (no lock, no
/// transaction id), expiry judged by the server's <c>clock_timestamp()</c>. Each statement is built from the fixed
/// fragments below; every value is a parameter.
/// </summary>
/// <remarks>
/// Ties in creation time are ordered by tenant, operation and key under the <c>"C"</c> collation (byte order), so the
/// keyset comparison and the <c>ORDER BY</c> agree whatever the database's collation is.
/// </remarks>
internal sealed partial class PostgreSqlIdempotencyStore : IIdempotencyStoreAdministration
{
    private const int MaxPageSize = 500;

    private const string SummaryColumns =
        "tenant, operation, idem_key, state, fencing_token, fingerprint, created_at, lease_expires_at, expires_at, recovery_point, status_code, attempts";

    private const string NewestFirst = """ORDER BY created_at DESC, tenant COLLATE "C" DESC, operation COLLATE "C" DESC, idem_key COLLATE "C" DESC""";

    private const string AfterPosition =
        """(created_at, tenant COLLATE "C", operation COLLATE "C", idem_key COLLATE "C") < (@after_created, @after_tenant, @after_operation, @after_key)""";

    private const string AuditColumns = "id, tenant, operation, idem_key, stored_fingerprint, attempted_fingerprint, payload, occurred_at";

    /// <inheritdoc />
    /// <remarks>
    /// A query for InProgress records (the "stuck keys" listing) reads the partial index of InProgress records; other
    /// listings read the table, which suits an operator's occasional look.
    /// </remarks>
    public async ValueTask<IdempotencyRecordPage> ListRecordsAsync(IdempotencyRecordQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        CheckLimit(query.Limit);
        var after = query.Continuation is { } continuation ? IdempotencyPageContinuation.ParseRecord(continuation) : ((DateTimeOffset, IdempotencyRecordId)?)null;
        var command = _statements.Create(ListRecordsSql(Schema.Table, query));
        command.Parameters.Add(new NpgsqlParameter<int>("limit", NpgsqlDbType.Integer) { TypedValue = query.Limit + 1 });
        AddText(command, "tenant", query.Tenant);
        AddText(command, "operation", query.Operation);
        if (query.CreatedBefore is { } createdBefore)
        {
            command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("created_before", NpgsqlDbType.TimestampTz) { TypedValue = createdBefore.ToUniversalTime() });
        }

        if (after is var (afterCreated, afterId))
        {
            command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("after_created", NpgsqlDbType.TimestampTz) { TypedValue = afterCreated });
            AddText(command, "after_tenant", afterId.Tenant);
            AddText(command, "after_operation", afterId.Operation);
            AddText(command, "after_key", afterId.Key);
        }

        var records = await RunAsync("list records", command, ReadSummariesAsync, cancellationToken).ConfigureAwait(false);
        return IdempotencyPageContinuation.RecordPage(records, query.Limit);
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<IdempotencyRecordSummary>> FindByKeyAsync(string tenant, string key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentNullException.ThrowIfNull(key);
        var command = _statements.Create($"SELECT {SummaryColumns} FROM {Schema.Table} WHERE tenant = @tenant AND idem_key = @key AND expires_at > clock_timestamp() {NewestFirst}");
        AddText(command, "tenant", tenant);
        AddText(command, "key", key);
        return await RunAsync("look a key up", command, ReadSummariesAsync, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>Newest first by the entry's identity column, the order the server recorded the entries in.</remarks>
    public async ValueTask<KeyReuseAuditPage> ListAuditAsync(KeyReuseAuditQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        CheckLimit(query.Limit);
        var before = query.Continuation is { } continuation ? IdempotencyPageContinuation.ParseAudit(continuation) : (long?)null;

        // Each filter is a fixed fragment when its value is given; every value is a parameter.
        var command = _statements.Create(
            $"SELECT {AuditColumns} FROM {Schema.AuditTable} WHERE true{(query.Tenant is null ? "" : " AND tenant = @tenant")}{(query.Operation is null ? "" : " AND operation = @operation")}{(query.Key is null ? "" : " AND idem_key = @key")}{(before is null ? "" : " AND id < @before")} ORDER BY id DESC LIMIT @limit");
        command.Parameters.Add(new NpgsqlParameter<int>("limit", NpgsqlDbType.Integer) { TypedValue = query.Limit + 1 });
        AddText(command, "tenant", query.Tenant);
        AddText(command, "operation", query.Operation);
        AddText(command, "key", query.Key);
        if (before is { } position)
        {
            command.Parameters.Add(new NpgsqlParameter<long>("before", NpgsqlDbType.Bigint) { TypedValue = position });
        }

        var (entries, positions) = await RunAsync("read the key-reuse audit", command, ReadAuditAsync, cancellationToken).ConfigureAwait(false);
        return IdempotencyPageContinuation.AuditPage(entries, positions, query.Limit);
    }

    /// <summary>The listing statement for <paramref name="query"/>: fixed fragments only, every value a parameter.</summary>
    internal static string ListRecordsSql(string table, IdempotencyRecordQuery query)
        => string.Concat(
        [
            $"SELECT {SummaryColumns} FROM {table} WHERE expires_at > clock_timestamp()",
            query.Tenant is null ? "" : " AND tenant = @tenant",
            query.Operation is null ? "" : " AND operation = @operation",

            // A literal, not a parameter, so the planner can prove the partial index of InProgress records applies.
            query.State switch { null => "", IdempotencyRecordState.InProgress => " AND state = 0", _ => " AND state = 1" },
            query.CreatedBefore is null ? "" : " AND created_at <= @created_before",
            query.Continuation is null ? "" : " AND " + AfterPosition,
            $" {NewestFirst} LIMIT @limit",
        ]);

    private static void CheckLimit(int limit)
    {
        if (limit is < 1 or > MaxPageSize)
        {
            throw new ArgumentOutOfRangeException(nameof(limit), limit, $"The page size must be between 1 and {MaxPageSize}.");
        }
    }

    private static void AddText(NpgsqlCommand command, string name, string? value)
    {
        if (value is not null)
        {
            command.Parameters.Add(new NpgsqlParameter<string>(name, NpgsqlDbType.Text) { TypedValue = value });
        }
    }

    private static async ValueTask<(List<KeyReuseAuditEntry> Entries, List<long> Positions)> ReadAuditAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        using (command)
        {
            var entries = new List<KeyReuseAuditEntry>();
            var positions = new List<long>();
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                // AuditColumns, in order.
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    positions.Add(reader.GetInt64(0));
                    entries.Add(new KeyReuseAuditEntry(
                        new IdempotencyRecordId(reader.GetString(1), reader.GetString(2), reader.GetString(3)),
                        reader.GetString(4),
                        reader.GetString(5),
                        reader.GetString(6),
                        reader.GetFieldValue<DateTimeOffset>(7)));
                }
            }

            return (entries, positions);
        }
    }

    private static async ValueTask<List<IdempotencyRecordSummary>> ReadSummariesAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        using var owned = command;
        var records = new List<IdempotencyRecordSummary>();
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var state = (IdempotencyRecordState)reader.GetInt16(3);
                records.Add(new IdempotencyRecordSummary(
                    new IdempotencyRecordId(reader.GetString(0), reader.GetString(1), reader.GetString(2)),
                    state,
                    reader.GetInt64(4),
                    reader.GetString(5),
                    reader.GetFieldValue<DateTimeOffset>(6),
                    reader.GetFieldValue<DateTimeOffset>(7),
                    reader.GetFieldValue<DateTimeOffset>(8),
                    reader.IsDBNull(9) ? null : reader.GetString(9),
                    state == IdempotencyRecordState.Completed && !reader.IsDBNull(10) ? reader.GetInt32(10) : null,
                    reader.GetInt32(11)));
            }
        }

        return records;
    }
}
