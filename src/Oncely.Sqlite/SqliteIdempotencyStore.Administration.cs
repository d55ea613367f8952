using Microsoft.Data.Sqlite;

namespace Oncely.Sqlite;

// The operator API's reads (IIdempotencyStoreAdministration). Plain autocommit SELECTs: in WAL mode they take no lock
// that waits for or blocks a writer. Every statement is built from the fixed fragments below; values are parameters.
// "+expires_at" keeps SQLite from walking the expiry index (every live row) when a better index or a scan serves.
internal sealed partial class SqliteIdempotencyStore : IIdempotencyStoreAdministration
{
    private const int MaxPageSize = 500;

    private const string SummaryColumns =
        "tenant, operation, idem_key, state, fencing_token, fingerprint, created_at, lease_expires_at, expires_at, recovery_point, status_code, attempts";

    // Newest first, ties by tenant, operation and key (all descending, SQLite's BINARY collation): the keyset order.
    private const string NewestFirst = "ORDER BY created_at DESC, tenant DESC, operation DESC, idem_key DESC";

    private const string AuditColumns = "id, tenant, operation, idem_key, stored_fingerprint, attempted_fingerprint, payload, occurred_at";

    /// <inheritdoc />
    /// <remarks>
    /// Uses the partial index on the creation time of InProgress records when the query asks for InProgress records (the
    /// "find stuck keys" query); other listings scan the table, which suits an operator's occasional look.
    /// </remarks>
    public async ValueTask<IdempotencyRecordPage> ListRecordsAsync(IdempotencyRecordQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        CheckLimit(query.Limit);
        var after = query.Continuation is { } continuation ? IdempotencyPageContinuation.ParseRecord(continuation) : ((DateTimeOffset, IdempotencyRecordId)?)null;
        var records = await ReadAsync(
            (store: this, query, after, sql: ListRecordsSql(_table, query)),
            static async (connection, s, ct) =>
            {
                using var command = SqliteDatabase.CreateCommand(connection, s.sql);
                command.Parameters.AddWithValue("@now", s.store.Now());
                command.Parameters.AddWithValue("@limit", s.query.Limit + 1);
                AddIfSet(command, "@tenant", s.query.Tenant);
                AddIfSet(command, "@operation", s.query.Operation);
                AddIfSet(command, "@created_before", s.query.CreatedBefore?.ToUnixTimeMilliseconds());
                if (s.after is var (afterCreated, afterId))
                {
                    command.Parameters.AddWithValue("@after_created", afterCreated.ToUnixTimeMilliseconds());
                    command.Parameters.AddWithValue("@after_tenant", afterId.Tenant);
                    command.Parameters.AddWithValue("@after_operation", afterId.Operation);
                    command.Parameters.AddWithValue("@after_key", afterId.Key);
                }

                return await ReadSummariesAsync(command, ct).ConfigureAwait(false);
            },
            cancellationToken).ConfigureAwait(false);

        return IdempotencyPageContinuation.RecordPage(records, query.Limit);
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<IdempotencyRecordSummary>> FindByKeyAsync(string tenant, string key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentNullException.ThrowIfNull(key);
        return await ReadAsync(
            (store: this, tenant, key, sql: $"""SELECT {SummaryColumns} FROM "{_table}" WHERE tenant = @tenant AND idem_key = @key AND +expires_at > @now {NewestFirst};"""),
            static async (connection, s, ct) =>
            {
                using var command = SqliteDatabase.CreateCommand(connection, s.sql);
                command.Parameters.AddWithValue("@tenant", s.tenant);
                command.Parameters.AddWithValue("@key", s.key);
                command.Parameters.AddWithValue("@now", s.store.Now());
                return await ReadSummariesAsync(command, ct).ConfigureAwait(false);
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>Newest first by the entry's row id, the order the entries were written in.</remarks>
    public async ValueTask<KeyReuseAuditPage> ListAuditAsync(KeyReuseAuditQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        CheckLimit(query.Limit);
        var before = query.Continuation is { } continuation ? IdempotencyPageContinuation.ParseAudit(continuation) : (long?)null;

        // Each filter is a fixed fragment when its value is given; every value is a parameter.
        var sql = $"""
            SELECT {AuditColumns} FROM "{_auditTable}" WHERE 1 = 1{(query.Tenant is null ? "" : " AND tenant = @tenant")}{(query.Operation is null ? "" : " AND operation = @operation")}{(query.Key is null ? "" : " AND idem_key = @key")}{(before is null ? "" : " AND id < @before")} ORDER BY id DESC LIMIT @limit;
            """;
        var (entries, positions) = await ReadAsync(
            (query, before, sql),
            static async (connection, s, ct) =>
            {
                using var command = SqliteDatabase.CreateCommand(connection, s.sql);
                command.Parameters.AddWithValue("@limit", s.query.Limit + 1);
                AddIfSet(command, "@tenant", s.query.Tenant);
                AddIfSet(command, "@operation", s.query.Operation);
                AddIfSet(command, "@key", s.query.Key);
                AddIfSet(command, "@before", s.before);
                var found = new List<KeyReuseAuditEntry>();
                var ids = new List<long>();
                var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    // AuditColumns, in order.
                    while (await reader.ReadAsync(ct).ConfigureAwait(false))
                    {
                        ids.Add(reader.GetInt64(0));
                        found.Add(new KeyReuseAuditEntry(
                            new IdempotencyRecordId(reader.GetString(1), reader.GetString(2), reader.GetString(3)),
                            reader.GetString(4),
                            reader.GetString(5),
                            reader.GetString(6),
                            SqliteUnixTime.ToDateTimeOffset(reader.GetInt64(7))));
                    }
                }

                return (found, ids);
            },
            cancellationToken).ConfigureAwait(false);

        return IdempotencyPageContinuation.AuditPage(entries, positions, query.Limit);
    }

    /// <summary>The listing statement for <paramref name="query"/>: fixed fragments only, every value a parameter.</summary>
    internal static string ListRecordsSql(string table, IdempotencyRecordQuery query)
        => string.Concat(
        [
            $"""SELECT {SummaryColumns} FROM "{table}" WHERE +expires_at > @now""",
            query.Tenant is null ? "" : " AND tenant = @tenant",
            query.Operation is null ? "" : " AND operation = @operation",

            // A literal, not a parameter, so the planner can use the partial index of InProgress records.
            query.State switch { null => "", IdempotencyRecordState.InProgress => " AND state = 0", _ => " AND state = 1" },
            query.CreatedBefore is null ? "" : " AND created_at <= @created_before",
            query.Continuation is null ? "" : " AND (created_at, tenant, operation, idem_key) < (@after_created, @after_tenant, @after_operation, @after_key)",
            $" {NewestFirst} LIMIT @limit;",
        ]);

    private static void CheckLimit(int limit)
    {
        if (limit is < 1 or > MaxPageSize)
        {
            throw new ArgumentOutOfRangeException(nameof(limit), limit, $"The page size must be between 1 and {MaxPageSize}.");
        }
    }

    private static void AddIfSet(SqliteCommand command, string name, object? value)
    {
        if (value is not null)
        {
            command.Parameters.AddWithValue(name, value);
        }
    }

    private static async ValueTask<List<IdempotencyRecordSummary>> ReadSummariesAsync(SqliteCommand command, CancellationToken cancellationToken)
    {
        var records = new List<IdempotencyRecordSummary>();
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var state = (IdempotencyRecordState)reader.GetInt32(3);
                records.Add(new IdempotencyRecordSummary(
                    new IdempotencyRecordId(reader.GetString(0), reader.GetString(1), reader.GetString(2)),
                    state,
                    reader.GetInt64(4),
                    reader.GetString(5),
                    SqliteUnixTime.ToDateTimeOffset(reader.GetInt64(6)),
                    SqliteUnixTime.ToDateTimeOffset(reader.GetInt64(7)),
                    SqliteUnixTime.ToDateTimeOffset(reader.GetInt64(8)),
                    reader.IsDBNull(9) ? null : reader.GetString(9),
                    state == IdempotencyRecordState.Completed && !reader.IsDBNull(10) ? reader.GetInt32(10) : null,
                    reader.GetInt32(11)));
            }
        }

        return records;
    }
}
