using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using Oncely.AspNetCore;
using Oncely.PostgreSql;

namespace Oncely.LoadTest;

/// <summary>
/// The payment path: a ledger-style transfer on PostgreSQL, the way the Payments sample moves money. One transaction
/// debits one account, credits another (two balance UPDATEs, in id order) and inserts the transfer row, then stores the
/// answer in the same transaction (transactional completion). In two-commit mode the middleware reserved the record,
/// in its own commit, before the handler ran; in one-commit mode (<c>WithOneCommitReservation</c>) the handler reserves
/// as its transaction's first statement, so the whole payment is one commit. The account pair is chosen from the key,
/// among <see cref="Accounts"/> accounts, so concurrent payments rarely wait on each other's row locks.
/// </summary>
internal sealed class TransferServer : ILoadTarget, IAsyncDisposable
{
    public const int Accounts = 1000;

    public static readonly RequestShape Transfer = new("POST", "/transfers", "{\"amount\":1}", ["Content-Type: application/json"]);

    private readonly WebApplication _app;
    private readonly NpgsqlDataSource _ledger;
    private readonly ConcurrentDictionary<string, byte> _keys = new(StringComparer.Ordinal);
    private long _runs;
    private long _totalRuns;
    private long _inFlight;

    private TransferServer(WebApplication app, NpgsqlDataSource ledger)
    {
        _app = app;
        _ledger = ledger;
    }

    public RequestShape Request => Transfer;

    public long? StoreCalls => null;

    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>Handler runs since the server started (never reset), for commits per payment.</summary>
    public long TotalRuns => Interlocked.Read(ref _totalRuns);

    public static async Task<TransferServer> StartAsync(string connectionString, bool oneCommit)
    {
        var ledger = NpgsqlDataSource.Create(connectionString);
        await CreateLedgerAsync(ledger);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(options => options.Listen(IPAddress.Loopback, 0));
        builder.Services.AddIdempotency().UsePostgreSql(o => o.DataSource = ledger);
        var app = builder.Build();
        var server = new TransferServer(app, ledger);
        app.Use(async (context, next) =>
        {
            Interlocked.Increment(ref server._inFlight);
            try
            {
                await next(context);
            }
            finally
            {
                Interlocked.Decrement(ref server._inFlight);
            }
        });
        app.UseIdempotency();
        var endpoint = app.MapPost("/transfers", (TransferRequest transfer, HttpContext context) => server.TransferAsync(transfer, context))
            .RequireIdempotencyKey()
            .AllowAnonymousIdempotency();
        if (oneCommit)
        {
            endpoint.WithOneCommitReservation();
        }

        await app.StartAsync();
        server.BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        return server;
    }

    /// <summary>The current transaction id (this read takes one): the difference of two, minus one, counts the write transactions between them.</summary>
    public async Task<long> TransactionIdAsync()
    {
        await using var command = _ledger.CreateCommand("SELECT txid_current()");
        return (long)(await command.ExecuteScalarAsync())!;
    }

    public async Task<HandlerRuns> DrainAndResetAsync()
    {
        await DrainAsync();
        var runs = new HandlerRuns(Interlocked.Exchange(ref _runs, 0), _keys.Count);
        _keys.Clear();
        return runs;
    }

    public async Task PrepopulateAsync(IEnumerable<string> keys)
    {
        using var client = new HttpClient { BaseAddress = BaseAddress };
        await Parallel.ForEachAsync(keys, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (key, cancellationToken) =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, Transfer.Path) { Content = new StringContent(Transfer.Body, Encoding.UTF8) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            request.Headers.TryAddWithoutValidation(IdempotencyOptions.HeaderName, key);
            using var response = await client.SendAsync(request, cancellationToken);
            if (response.StatusCode != HttpStatusCode.Created || response.Headers.Contains(IdempotencyOptions.ReplayedHeaderName))
            {
                throw new InvalidOperationException($"Pre-populating key {key} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(cancellationToken)}");
            }
        });
    }

    public async Task DrainAsync()
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (Interlocked.Read(ref _inFlight) > 0)
        {
            if (waited.Elapsed > TimeSpan.FromSeconds(30))
            {
                throw new InvalidOperationException("The server still has requests in flight 30 s after wrk exited.");
            }

            await Task.Delay(10);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        await _ledger.DisposeAsync();
    }

    private async Task<IResult> TransferAsync(TransferRequest transfer, HttpContext context)
    {
        var execution = context.GetIdempotencyExecution()!;
        var key = execution.Id.Key;
        var (from, to) = AccountsFor(key);
        await using var connection = await _ledger.OpenConnectionAsync(context.RequestAborted);
        await using var transaction = await connection.BeginTransactionAsync(context.RequestAborted);
        await execution.ReserveInTransactionAsync(transaction, context.RequestAborted); // a no-op in two-commit mode

        // The ledger writes, in one round trip; the lower account id is locked first, so transfers never deadlock.
        await using (var batch = new NpgsqlBatch(connection, transaction))
        {
            var (first, second) = from < to ? ((from, -transfer.Amount), (to, transfer.Amount)) : ((to, transfer.Amount), (from, -transfer.Amount));
            batch.BatchCommands.Add(Balance(first.Item1, first.Item2));
            batch.BatchCommands.Add(Balance(second.Item1, second.Item2));
            var insert = new NpgsqlBatchCommand("INSERT INTO bench_transfers (idem_key, from_account, to_account, amount) VALUES ($1, $2, $3, $4)");
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key });
            insert.Parameters.Add(new NpgsqlParameter<int> { TypedValue = from });
            insert.Parameters.Add(new NpgsqlParameter<int> { TypedValue = to });
            insert.Parameters.Add(new NpgsqlParameter<long> { TypedValue = transfer.Amount });
            batch.BatchCommands.Add(insert);
            await batch.ExecuteNonQueryAsync(context.RequestAborted);
        }

        var response = IdempotentResponses.Json(StatusCodes.Status201Created, new { key, from, to, amount = transfer.Amount }, "/transfers/" + key);
        await execution.CompleteInTransactionAsync(transaction, response, context.RequestAborted);
        await transaction.CommitAsync(context.RequestAborted);
        Interlocked.Increment(ref _runs);
        Interlocked.Increment(ref _totalRuns);
        _keys.TryAdd(key, 0);
        return response.ToResult();
    }

    private static NpgsqlBatchCommand Balance(int account, long delta)
    {
        var command = new NpgsqlBatchCommand("UPDATE bench_accounts SET balance = balance + $1 WHERE id = $2");
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = delta });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = account });
        return command;
    }

    // Two different accounts from the key (FNV-1a: the same key always picks the same pair).
    private static (int From, int To) AccountsFor(string key)
    {
        var hash = 2166136261u;
        foreach (var c in key)
        {
            hash = (hash ^ c) * 16777619u;
        }

        var from = (int)(hash % Accounts);
        var to = (from + 1 + (int)(hash / Accounts % (Accounts - 1))) % Accounts;
        return (from, to);
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

internal sealed record TransferRequest(long Amount);

/// <summary>
/// An HTTP cell on a <see cref="TransferServer"/> that also counts the write transactions (PostgreSQL transaction ids)
/// per payment over the cell's runs: 2 on the two-commit path (reservation, then the ledger transaction), 1 on the
/// one-commit path.
/// </summary>
internal sealed class PaymentPathCell(HttpCell inner, TransferServer server) : Cell(inner.Variant, inner.Path)
{
    public override async Task<CellResult> MeasureAsync(int concurrency, int repetition, Timing timing)
    {
        var runsBefore = server.TotalRuns;
        var before = await server.TransactionIdAsync();
        var result = await inner.MeasureAsync(concurrency, repetition, timing);
        var after = await server.TransactionIdAsync();
        var runs = server.TotalRuns - runsBefore;
        if (Path != HttpCell.Execute || runs == 0)
        {
            return result;
        }

        var commits = (after - before - 1) / (double)runs;
        return result with { Check = result.Check + string.Create(CultureInfo.InvariantCulture, $"; {commits:0.00} write commits/payment") };
    }
}
