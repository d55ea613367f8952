using System.Globalization;
using Npgsql;
using Oncely.PostgreSql;

namespace Oncely.LoadTest;

/// <summary>
/// The ledger transfer on PostgreSQL: the application's own <see cref="NpgsqlDataSource"/> (default settings, as
/// <c>AddNpgsqlDataSource</c> builds it), shared with the store (<c>UsePostgreSql(o =&gt; o.DataSource = ledger)</c>). The
/// two balance updates and the transfer row go in one <see cref="NpgsqlBatch"/> (one round trip), then the commit.
/// </summary>
internal sealed class PostgresTransferServer : TransferServer
{
    private readonly NpgsqlDataSource _ledger;

    /// <summary>The store's <see cref="PostgreSqlIdempotencyStoreOptions.PrepareStatements"/> (<c>--unprepared</c> turns it off, to compare).</summary>
    public static bool PrepareStatements { get; set; } = true;

    private PostgresTransferServer(NpgsqlDataSource ledger, PaymentMode mode)
        : base(mode) => _ledger = ledger;

    public static async Task<PostgresTransferServer> StartAsync(string connectionString, PaymentMode mode)
    {
        var ledger = NpgsqlDataSource.Create(connectionString);
        var server = new PostgresTransferServer(ledger, mode);
        try
        {
            await CreateLedgerAsync(ledger);
            await server.StartAsync();
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>The current transaction id (this read takes one): the difference of two, minus one, counts the write transactions between them.</summary>
    public override async Task<long?> WriteTransactionCounterAsync()
    {
        await using var command = _ledger.CreateCommand("SELECT txid_current()");
        return (long)(await command.ExecuteScalarAsync())!;
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        await _ledger.DisposeAsync();
    }

    protected override void UseStore(IIdempotencyBuilder idempotency) => idempotency.UsePostgreSql(o =>
    {
        o.DataSource = _ledger;
        o.PrepareStatements = PrepareStatements;
    });

    protected override async Task TransferAsync(string key, int from, int to, long amount, IdempotencyExecution? execution, IdempotentResponse response, CancellationToken cancellationToken)
    {
        await using var connection = await _ledger.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        // The ledger writes, in one round trip; the lower account id is locked first, so transfers never deadlock. In
        // one-commit mode the reservation goes in the same round trip, in front of them (ReserveAndExecuteAsync), or,
        // in the comparison variant, in a round trip of its own before them; in two-commit mode ReserveAndExecuteAsync
        // only executes the batch.
        await using (var batch = new NpgsqlBatch(connection, transaction))
        {
            var (first, second) = from < to ? ((from, -amount), (to, amount)) : ((to, amount), (from, -amount));
            batch.BatchCommands.Add(Balance(first.Item1, first.Item2));
            batch.BatchCommands.Add(Balance(second.Item1, second.Item2));
            var insert = new NpgsqlBatchCommand("INSERT INTO bench_transfers (idem_key, from_account, to_account, amount) VALUES ($1, $2, $3, $4)");
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key });
            insert.Parameters.Add(new NpgsqlParameter<int> { TypedValue = from });
            insert.Parameters.Add(new NpgsqlParameter<int> { TypedValue = to });
            insert.Parameters.Add(new NpgsqlParameter<long> { TypedValue = amount });
            batch.BatchCommands.Add(insert);
            if (execution is not null && Mode == PaymentMode.OneCommitReservationApart)
            {
                await execution.ReserveInTransactionAsync(transaction, cancellationToken);
                await batch.ExecuteNonQueryAsync(cancellationToken);
            }
            else if (execution is not null)
            {
                await execution.ReserveAndExecuteAsync(batch, cancellationToken);
            }
            else
            {
                await batch.ExecuteNonQueryAsync(cancellationToken);
            }
        }

        if (execution is not null)
        {
            // The completion and the COMMIT in one round trip.
            await execution.CompleteAndCommitAsync(transaction, response, cancellationToken);
        }
        else
        {
            await transaction.CommitAsync(cancellationToken);
        }
    }

    private static NpgsqlBatchCommand Balance(int account, long delta)
    {
        var command = new NpgsqlBatchCommand("UPDATE bench_accounts SET balance = balance + $1 WHERE id = $2");
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = delta });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = account });
        return command;
    }

    private static async Task CreateLedgerAsync(NpgsqlDataSource ledger)
    {
        await using var command = ledger.CreateCommand(string.Create(CultureInfo.InvariantCulture, $"""
            CREATE TABLE IF NOT EXISTS bench_accounts (id integer PRIMARY KEY, balance bigint NOT NULL);
            CREATE TABLE IF NOT EXISTS bench_transfers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, idem_key text NOT NULL,
                from_account integer NOT NULL, to_account integer NOT NULL, amount bigint NOT NULL);
            INSERT INTO bench_accounts (id, balance) SELECT g, 1000000000 FROM generate_series(0, {Accounts - 1}) g ON CONFLICT DO NOTHING;
            """));
        await command.ExecuteNonQueryAsync();
    }
}
