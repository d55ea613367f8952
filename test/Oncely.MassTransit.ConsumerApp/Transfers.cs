using System.Data.Common;
using Microsoft.Data.Sqlite;

// Shared with Oncely.MassTransit.Tests by linking: the same contract (so both sides agree on its message URN) and the
// same business database.
namespace Oncely.MassTransit.Testing;

/// <summary>The message: move <see cref="Amount"/> to <see cref="Account"/>. Its MessageId is the idempotency key.</summary>
public sealed record Transfer(string Account, long Amount);

/// <summary>
/// The consumers' business database (SQLite, the same file as the idempotency records, so one transaction covers both):
/// <c>effects</c> holds one row per applied transfer (no unique constraint: a double execution shows as two rows), and
/// <c>runs</c> one row per consumer invocation, committed on its own before the business transaction.
/// </summary>
public sealed class TransferLedger(string connectionString)
{
    public string ConnectionString { get; } = connectionString;

    public static string ConnectionStringFor(string path) => new SqliteConnectionStringBuilder { DataSource = path, DefaultTimeout = 30, Pooling = true }.ConnectionString;

    public async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken = default)
    {
        var connection = new SqliteConnection(ConnectionString);
        await connection.OpenAsync(cancellationToken);
        await using var pragma = connection.CreateCommand();
        pragma.CommandText = "PRAGMA busy_timeout = 30000;";
        await pragma.ExecuteNonQueryAsync(cancellationToken);
        return connection;
    }

    public async Task EnsureSchemaAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await ExecuteAsync(connection, null, "PRAGMA journal_mode = WAL", cancellationToken);
        await ExecuteAsync(connection, null, "CREATE TABLE IF NOT EXISTS effects (id INTEGER PRIMARY KEY AUTOINCREMENT, message_key TEXT NOT NULL, account TEXT NOT NULL, amount INTEGER NOT NULL)", cancellationToken);
        await ExecuteAsync(connection, null, "CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, message_key TEXT NOT NULL, process INTEGER NOT NULL)", cancellationToken);
    }

    /// <summary>Counts a consumer invocation, committed at once (whatever happens to the business transaction).</summary>
    public async Task RecordRunAsync(string key, CancellationToken cancellationToken = default)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await ExecuteAsync(connection, null, "INSERT INTO runs (message_key, process) VALUES (@k, @p)", cancellationToken, ("@k", key), ("@p", Environment.ProcessId));
    }

    /// <summary>Begins the business transaction: <c>BEGIN IMMEDIATE</c>, so it holds SQLite's write lock from the start.</summary>
    public static DbTransaction BeginWrite(SqliteConnection connection) => connection.BeginTransaction(deferred: false);

    public static Task InsertEffectAsync(SqliteConnection connection, DbTransaction transaction, string key, Transfer transfer, CancellationToken cancellationToken = default)
        => ExecuteAsync(connection, transaction, "INSERT INTO effects (message_key, account, amount) VALUES (@k, @a, @m)", cancellationToken, ("@k", key), ("@a", transfer.Account), ("@m", transfer.Amount));

    public async Task<long> CountAsync(string sql, string? key = null)
    {
        await using var connection = await OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("@k", (object?)key ?? DBNull.Value);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public Task<long> EffectsAsync(string key) => CountAsync("SELECT COUNT(*) FROM effects WHERE message_key = @k", key);

    public Task<long> RunsAsync(string key) => CountAsync("SELECT COUNT(*) FROM runs WHERE message_key = @k", key);

    private static async Task ExecuteAsync(SqliteConnection connection, DbTransaction? transaction, string sql, CancellationToken cancellationToken, params (string Name, object Value)[] parameters)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = (SqliteTransaction?)transaction;
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
