using Microsoft.Data.Sqlite;
using Oncely.Sqlite;
using SQLitePCL;

namespace Oncely.LoadTest;

/// <summary>
/// The ledger transfer on SQLite: the records and the ledger in one database file (WAL, SQLite's default durability),
/// so the completion, and in one-commit mode the reservation, commit with the ledger rows. The handler opens a pooled
/// connection of its own (a connection string of its own, so its pool never shares a handle with the store's), begins
/// an immediate transaction (SQLite's one writer: the lock is taken at <c>BEGIN</c>) and runs the two balance updates
/// and the transfer row as one command. The handler's transactions queue on an asynchronous gate first, the way an
/// application on SQLite serialises its writers (SQLite's own busy handler sleeps in steps of up to 100 ms, which
/// would measure the sleeps); the gate is the same in all three variants, and the store's own writes queue on the
/// store's gate and take the file's lock as usual.
/// </summary>
internal sealed class SqliteTransferServer : TransferServer
{
    private const int BusyTimeoutMilliseconds = 30_000;

    private readonly SemaphoreSlim _writer = new(1, 1);
    private readonly string _storeConnection;
    private readonly string _ledgerConnection;

    private SqliteTransferServer(string file, PaymentMode mode)
        : base(mode)
    {
        _storeConnection = new SqliteConnectionStringBuilder { DataSource = file }.ToString();
        _ledgerConnection = new SqliteConnectionStringBuilder { DataSource = file, DefaultTimeout = BusyTimeoutMilliseconds / 1000 }.ToString();
    }

    public static async Task<SqliteTransferServer> StartAsync(string file, PaymentMode mode)
    {
        var server = new SqliteTransferServer(file, mode);
        try
        {
            await server.CreateLedgerAsync();
            await server.StartAsync();
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    public override Task<long?> WriteTransactionCounterAsync() => Task.FromResult<long?>(null);

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        _writer.Dispose();
    }

    protected override void UseStore(IIdempotencyBuilder idempotency) => idempotency.UseSqlite(_storeConnection);

    protected override async Task TransferAsync(string key, int from, int to, long amount, IdempotencyExecution? execution, IdempotentResponse response, CancellationToken cancellationToken)
    {
        await _writer.WaitAsync(cancellationToken);
        try
        {
            await TransferUnderGateAsync(key, from, to, amount, execution, response, cancellationToken);
        }
        finally
        {
            _writer.Release();
        }
    }

    private async Task TransferUnderGateAsync(string key, int from, int to, long amount, IdempotencyExecution? execution, IdempotentResponse response, CancellationToken cancellationToken)
    {
        await using var connection = new SqliteConnection(_ledgerConnection);
        await connection.OpenAsync(cancellationToken);
        raw.sqlite3_busy_timeout(connection.Handle, BusyTimeoutMilliseconds);
        await using var transaction = connection.BeginTransaction(deferred: false);
        if (execution is not null)
        {
            await execution.ReserveInTransactionAsync(transaction, cancellationToken); // a no-op in two-commit mode
        }

        await using (var command = connection.CreateCommand())
        {
            command.Transaction = transaction;
            command.CommandText = """
                UPDATE bench_accounts SET balance = balance + $d1 WHERE id = $a1;
                UPDATE bench_accounts SET balance = balance + $d2 WHERE id = $a2;
                INSERT INTO bench_transfers (idem_key, from_account, to_account, amount) VALUES ($key, $from, $to, $amount);
                """;
            var (first, second) = from < to ? ((from, -amount), (to, amount)) : ((to, amount), (from, -amount));
            command.Parameters.AddWithValue("$d1", first.Item2);
            command.Parameters.AddWithValue("$a1", first.Item1);
            command.Parameters.AddWithValue("$d2", second.Item2);
            command.Parameters.AddWithValue("$a2", second.Item1);
            command.Parameters.AddWithValue("$key", key);
            command.Parameters.AddWithValue("$from", from);
            command.Parameters.AddWithValue("$to", to);
            command.Parameters.AddWithValue("$amount", amount);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        if (execution is not null)
        {
            await execution.CompleteInTransactionAsync(transaction, response, cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    private async Task CreateLedgerAsync()
    {
        await using var connection = new SqliteConnection(_ledgerConnection);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = $"""
            PRAGMA journal_mode = WAL;
            CREATE TABLE IF NOT EXISTS bench_accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS bench_transfers (id INTEGER PRIMARY KEY AUTOINCREMENT, idem_key TEXT NOT NULL,
                from_account INTEGER NOT NULL, to_account INTEGER NOT NULL, amount INTEGER NOT NULL);
            WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n < {Accounts - 1})
            INSERT OR IGNORE INTO bench_accounts (id, balance) SELECT n, 1000000000 FROM g;
            """;
        await command.ExecuteNonQueryAsync();
    }
}
