using Microsoft.Data.Sqlite;
using Npgsql;
using NpgsqlTypes;

namespace Oncely.LoadTest;

/// <summary>
/// The most a SQL store can do with its driver: the plain reserve-and-complete pair of statements, in the same shape
/// as the store's (insert-on-conflict that only takes over a dead row, then an update guarded by the fencing token),
/// with no HTTP, no fingerprint and no engine. A store variant's execute rate over this is what the store's own
/// code costs on top of the database.
/// </summary>
internal interface IRawPrimitive
{
    string Name { get; }

    Task ReserveAndCompleteAsync(string key);
}

internal static class RawPayload
{
    public const string Tenant = IdempotencyRecordId.AnonymousTenant;
    public const string Operation = "POST /payments";
    public const string Fingerprint = "5d41402abc4b2a76b9719d911017c592ae2c9a3bd2d1a1c1d7e9c1d2b0e4f6a8";
    public const string Headers = """[["Content-Type","application/json; charset=utf-8"],["Location","/payments/pay_1"]]""";
    public static readonly byte[] Body = """{"id":"pay_1","amount":1234,"status":"succeeded"}"""u8.ToArray();
}

/// <summary>SQLite, as the store talks to it: a pooled connection per statement, <c>PRAGMA busy_timeout</c>, the statement.</summary>
internal sealed class SqliteRawPrimitive(string connectionString, string table) : IRawPrimitive
{
    private readonly string _reserveSql = $"""
        INSERT INTO "{table}" AS r (tenant, operation, idem_key, fingerprint, state, fencing_token, attempts,
                                    lease_expires_at, expires_at, recovery_point, status_code, headers, body, body_omitted, created_at)
        VALUES (@tenant, @operation, @key, @fingerprint, 0, (SELECT value + 1 FROM "{table}_fence" WHERE id = 1), 1,
                @lease_expires_at, @expires_at, NULL, NULL, NULL, NULL, 0, @now)
        ON CONFLICT (tenant, operation, idem_key) DO UPDATE SET
            fencing_token = excluded.fencing_token, lease_expires_at = excluded.lease_expires_at, attempts = r.attempts + 1
        WHERE r.expires_at <= @now OR (r.fingerprint = excluded.fingerprint AND r.state = 0 AND r.lease_expires_at <= @now)
        RETURNING fencing_token;
        """;

    private readonly string _completeSql = $"""
        UPDATE "{table}" SET state = 1, status_code = @status_code, headers = @headers, body = @body, body_omitted = 0, expires_at = @expires_at
        WHERE tenant = @tenant AND operation = @operation AND idem_key = @key AND fencing_token = @token AND state = 0;
        """;

    public string Name => "SQLite raw primitive";

    public async Task ReserveAndCompleteAsync(string key)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var token = await RunAsync(async connection =>
        {
            using var command = Command(connection, _reserveSql, key);
            command.Parameters.AddWithValue("@fingerprint", RawPayload.Fingerprint);
            command.Parameters.AddWithValue("@lease_expires_at", now + 30_000);
            command.Parameters.AddWithValue("@expires_at", now + 86_400_000);
            command.Parameters.AddWithValue("@now", now);
            return (long)(await command.ExecuteScalarAsync() ?? throw new InvalidOperationException($"key {key} was not reserved"));
        });
        var completed = await RunAsync(async connection =>
        {
            using var command = Command(connection, _completeSql, key);
            command.Parameters.AddWithValue("@token", token);
            command.Parameters.AddWithValue("@status_code", 201);
            command.Parameters.AddWithValue("@headers", RawPayload.Headers);
            command.Parameters.Add("@body", SqliteType.Blob).Value = RawPayload.Body;
            command.Parameters.AddWithValue("@expires_at", now + 86_400_000);
            return (long)await command.ExecuteNonQueryAsync();
        });
        if (completed != 1)
        {
            throw new InvalidOperationException($"key {key} was not completed");
        }
    }

    private static SqliteCommand Command(SqliteConnection connection, string sql, string key)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.CommandTimeout = 1;
        command.Parameters.AddWithValue("@tenant", RawPayload.Tenant);
        command.Parameters.AddWithValue("@operation", RawPayload.Operation);
        command.Parameters.AddWithValue("@key", key);
        return command;
    }

    // The store's discipline: a connection from the pool per statement, busy_timeout set, SQLITE_BUSY retried briefly.
    private async Task<T> RunAsync<T>(Func<SqliteConnection, Task<T>> work)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await using var connection = new SqliteConnection(connectionString);
                await connection.OpenAsync();
                using (var pragma = connection.CreateCommand())
                {
                    pragma.CommandText = "PRAGMA busy_timeout = 5000;";
                    await pragma.ExecuteNonQueryAsync();
                }

                return await work(connection);
            }
            catch (SqliteException e) when ((e.SqliteErrorCode & 0xFF) is 5 or 6 && attempt < 50)
            {
                await Task.Delay(5);
            }
        }
    }
}

/// <summary>
/// PostgreSQL through one <see cref="NpgsqlDataSource"/>: one statement per transition, the server's clock, a sequence for
/// tokens. <see cref="ReadCompletedAsync"/> is the ceiling for a replay: the plain SELECT of a completed row by its key,
/// every column the store reads, with no reservation attempt in front of it.
/// </summary>
internal sealed class PostgreSqlRawPrimitive(NpgsqlDataSource dataSource, string schema, string table) : IRawPrimitive
{
    private readonly string _reserveSql = $"""
        INSERT INTO "{schema}"."{table}" AS r
            (tenant, operation, idem_key, fingerprint, state, fencing_token, lease_expires_at, expires_at,
             recovery_point, status_code, headers, body, body_omitted, created_at, updated_at)
        VALUES (@tenant, @operation, @key, @fingerprint, 0, nextval('"{schema}"."{table}_fencing_seq"'),
                clock_timestamp() + @lease, clock_timestamp() + @expiration, NULL, NULL, NULL, NULL, false, clock_timestamp(), clock_timestamp())
        ON CONFLICT (tenant, operation, idem_key) DO UPDATE SET
            fencing_token = EXCLUDED.fencing_token, lease_expires_at = EXCLUDED.lease_expires_at, updated_at = EXCLUDED.updated_at
        WHERE r.expires_at <= EXCLUDED.updated_at
           OR (r.state = 0 AND r.fingerprint = EXCLUDED.fingerprint AND r.lease_expires_at <= EXCLUDED.updated_at)
        RETURNING r.fencing_token
        """;

    private readonly string _completeSql = $"""
        UPDATE "{schema}"."{table}"
        SET state = 1, status_code = @status, headers = @headers, body = @body, body_omitted = false,
            expires_at = clock_timestamp() + @expiration, updated_at = clock_timestamp()
        WHERE tenant = @tenant AND operation = @operation AND idem_key = @key AND fencing_token = @token AND state = 0
        """;

    private readonly string _readSql = $"""
        SELECT fingerprint, state, fencing_token, lease_expires_at, expires_at, recovery_point,
               status_code, headers::text, body, body_omitted
        FROM "{schema}"."{table}"
        WHERE tenant = @tenant AND operation = @operation AND idem_key = @key AND expires_at > clock_timestamp()
        """;

    public string Name => "PostgreSQL raw primitive";

    public async Task ReadCompletedAsync(string key)
    {
        await using var command = Command(_readSql, key);
        await using var reader = await command.ExecuteReaderAsync();
        if (!await reader.ReadAsync() || reader.GetInt16(1) != 1)
        {
            throw new InvalidOperationException($"key {key} has no completed row");
        }

        _ = reader.GetString(0);
        _ = reader.GetInt64(2);
        _ = reader.GetFieldValue<DateTimeOffset>(3);
        _ = reader.GetFieldValue<DateTimeOffset>(4);
        _ = reader.GetInt32(6);
        _ = reader.GetString(7);
        _ = reader.GetFieldValue<byte[]>(8);
        _ = reader.GetBoolean(9);
    }

    public async Task ReserveAndCompleteAsync(string key)
    {
        long token;
        await using (var reserve = Command(_reserveSql, key))
        {
            reserve.Parameters.Add(new NpgsqlParameter<string>("fingerprint", NpgsqlDbType.Text) { TypedValue = RawPayload.Fingerprint });
            reserve.Parameters.Add(new NpgsqlParameter<TimeSpan>("lease", NpgsqlDbType.Interval) { TypedValue = TimeSpan.FromSeconds(30) });
            reserve.Parameters.Add(new NpgsqlParameter<TimeSpan>("expiration", NpgsqlDbType.Interval) { TypedValue = TimeSpan.FromHours(24) });
            token = (long)(await reserve.ExecuteScalarAsync() ?? throw new InvalidOperationException($"key {key} was not reserved"));
        }

        await using var complete = Command(_completeSql, key);
        complete.Parameters.Add(new NpgsqlParameter<long>("token", NpgsqlDbType.Bigint) { TypedValue = token });
        complete.Parameters.Add(new NpgsqlParameter<int>("status", NpgsqlDbType.Integer) { TypedValue = 201 });
        complete.Parameters.Add(new NpgsqlParameter<string>("headers", NpgsqlDbType.Jsonb) { TypedValue = RawPayload.Headers });
        complete.Parameters.Add(new NpgsqlParameter<ReadOnlyMemory<byte>>("body", NpgsqlDbType.Bytea) { TypedValue = RawPayload.Body });
        complete.Parameters.Add(new NpgsqlParameter<TimeSpan>("expiration", NpgsqlDbType.Interval) { TypedValue = TimeSpan.FromHours(24) });
        if (await complete.ExecuteNonQueryAsync() != 1)
        {
            throw new InvalidOperationException($"key {key} was not completed");
        }
    }

    private NpgsqlCommand Command(string sql, string key)
    {
        var command = dataSource.CreateCommand(sql);
        command.Parameters.Add(new NpgsqlParameter<string>("tenant", NpgsqlDbType.Text) { TypedValue = RawPayload.Tenant });
        command.Parameters.Add(new NpgsqlParameter<string>("operation", NpgsqlDbType.Text) { TypedValue = RawPayload.Operation });
        command.Parameters.Add(new NpgsqlParameter<string>("key", NpgsqlDbType.Text) { TypedValue = key });
        return command;
    }
}
