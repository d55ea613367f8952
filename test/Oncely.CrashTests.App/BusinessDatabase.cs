using Oncely.Testing;
using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Oncely.CrashTests.App;

/// <summary>The app's own database (the same one the idempotency store uses): a ledger, a log of handler runs, and a fake bank.</summary>
public sealed class BusinessDatabase(string kind, string connectionString)
{
    public bool IsSqlite => kind == "sqlite";

    public async Task<DbConnection> OpenAsync(CancellationToken cancellationToken = default)
    {
        DbConnection connection = IsSqlite ? new SqliteConnection(connectionString) : new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        if (IsSqlite)
        {
            await ExecuteAsync(connection, null, "PRAGMA busy_timeout = 5000");
        }

        return connection;
    }

    public async Task CreateTablesAsync()
    {
        await using var connection = await OpenAsync();
        await ExecuteAsync(connection, null, "CREATE TABLE IF NOT EXISTS ledger (idem_key TEXT NOT NULL, entry TEXT NOT NULL, amount BIGINT NOT NULL)");
        await ExecuteAsync(connection, null, "CREATE TABLE IF NOT EXISTS handler_runs (idem_key TEXT NOT NULL, endpoint TEXT NOT NULL)");
        await ExecuteAsync(connection, null, "CREATE TABLE IF NOT EXISTS bank_calls (derived_key TEXT NOT NULL)");
        await ExecuteAsync(connection, null, "CREATE TABLE IF NOT EXISTS bank_transfers (derived_key TEXT NOT NULL PRIMARY KEY, amount BIGINT NOT NULL)");
    }

    /// <summary>Counts a handler run, committed on its own at once, so a run that dies later is still counted.</summary>
    public async Task<long> CountRunAsync(string key, string endpoint)
    {
        await using var connection = await OpenAsync();
        await ExecuteAsync(connection, null, "INSERT INTO handler_runs (idem_key, endpoint) VALUES (@k, @e)", ("@k", key), ("@e", endpoint));
        return await ScalarAsync(connection, "SELECT COUNT(*) FROM handler_runs WHERE idem_key = @k", ("@k", key));
    }

    /// <summary>
    /// The fake bank, a foreign system: its own autocommitted writes, outside the app's transactions. It logs every call
    /// and performs each transfer once per idempotency key, as a real bank API that honours keys does.
    /// </summary>
    public async Task<bool> BankTransferAsync(string derivedKey, long amount)
    {
        await using var connection = await OpenAsync();
        await ExecuteAsync(connection, null, "INSERT INTO bank_calls (derived_key) VALUES (@k)", ("@k", derivedKey));
        await using var command = TestSql.Command(connection, null, "INSERT INTO bank_transfers (derived_key, amount) VALUES (@k, @a) ON CONFLICT (derived_key) DO NOTHING", [("@k", derivedKey), ("@a", amount)]);
        return await command.ExecuteNonQueryAsync() == 1;
    }

    public static Task ExecuteAsync(DbConnection connection, DbTransaction? transaction, string sql, params (string Name, object Value)[] parameters)
        => TestSql.ExecuteAsync(connection, transaction, sql, parameters);

    public static Task<long> ScalarAsync(DbConnection connection, string sql, params (string Name, object Value)[] parameters)
        => TestSql.ScalarAsync(connection, sql, parameters);
}
