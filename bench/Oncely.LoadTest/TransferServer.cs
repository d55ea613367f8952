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
using Oncely.AspNetCore;

namespace Oncely.LoadTest;

/// <summary>How a payment endpoint uses Oncely: not at all (the same transaction, the reference), two commits, or one.</summary>
internal enum PaymentMode
{
    /// <summary>No Oncely: the ledger transaction alone, the same statements, one commit. The payment's own cost.</summary>
    WithoutOncely,

    /// <summary>The middleware reserves in its own commit first; the handler completes inside its transaction.</summary>
    TwoCommits,

    /// <summary>
    /// <c>WithOneCommitReservation()</c>: the reservation is the handler transaction's first statement; on PostgreSQL it
    /// goes with the ledger batch (<see cref="IdempotencyExecution.ReserveAndExecuteAsync"/>), one round trip.
    /// </summary>
    OneCommit,

    /// <summary>
    /// As <see cref="OneCommit"/>, but the reservation is a round trip of its own (<see cref="IdempotencyExecution.ReserveInTransactionAsync"/>)
    /// before the ledger batch: what <see cref="IdempotencyExecution.ReserveAndExecuteAsync"/> saves, in the same run.
    /// </summary>
    OneCommitReservationApart,
}

/// <summary>
/// The payment path: a ledger-style transfer, the way the Payments sample moves money. One transaction debits one
/// account, credits another (two balance UPDATEs, in id order, so transfers never deadlock) and inserts the transfer
/// row; with Oncely it also stores the answer in the same transaction (transactional completion). In
/// <see cref="PaymentMode.TwoCommits"/> the middleware reserved the record, in its own commit, before the handler ran;
/// in <see cref="PaymentMode.OneCommit"/> the handler reserves as its transaction's first statement, so the whole
/// payment is one commit; in <see cref="PaymentMode.WithoutOncely"/> there is no middleware and no record, only the
/// same ledger transaction (the key of the request is stored in the transfer row all the same). The account pair is
/// chosen from the key, among <see cref="Accounts"/> accounts, so concurrent payments rarely wait on each other's
/// row locks. The database's statements live in the derived classes (PostgreSQL, SQLite); hosting, counting and
/// draining here.
/// </summary>
internal abstract class TransferServer : ILoadTarget, IAsyncDisposable
{
    public const int Accounts = 1000;

    public static readonly RequestShape Transfer = new("POST", "/transfers", "{\"amount\":1}", ["Content-Type: application/json"]);

    private readonly ConcurrentDictionary<string, byte> _keys = new(StringComparer.Ordinal);
    private WebApplication? _app;
    private long _runs;
    private long _totalRuns;
    private long _inFlight;

    protected TransferServer(PaymentMode mode) => Mode = mode;

    public PaymentMode Mode { get; }

    public RequestShape Request => Transfer;

    public long? StoreCalls => null;

    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>Handler runs since the server started (never reset), for commits per payment.</summary>
    public long TotalRuns => Interlocked.Read(ref _totalRuns);

    /// <summary>
    /// A counter that grows by one per write transaction of the database, or <see langword="null"/> when the database
    /// has none to read (SQLite): the difference of two readings over the handler's runs is the commits per payment.
    /// </summary>
    public abstract Task<long?> WriteTransactionCounterAsync();

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

    public virtual async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    /// <summary>Chooses the store on <c>AddIdempotency()</c>'s builder (called only with Oncely).</summary>
    protected abstract void UseStore(IIdempotencyBuilder idempotency);

    /// <summary>
    /// One payment: the ledger transaction for <paramref name="key"/>, moving <paramref name="amount"/> from
    /// <paramref name="from"/> to <paramref name="to"/>, with <paramref name="execution"/>'s reservation (a no-op in
    /// two-commit mode) first and its completion with <paramref name="response"/> last, when there is one.
    /// </summary>
    protected abstract Task TransferAsync(string key, int from, int to, long amount, IdempotencyExecution? execution, IdempotentResponse response, CancellationToken cancellationToken);

    /// <summary>Starts Kestrel on 127.0.0.1 (a free port) with <c>POST /transfers</c> in this server's mode.</summary>
    protected async Task StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(options => options.Listen(IPAddress.Loopback, 0));
        if (Mode != PaymentMode.WithoutOncely)
        {
            UseStore(builder.Services.AddIdempotency());
        }

        var app = builder.Build();
        app.Use(async (context, next) =>
        {
            Interlocked.Increment(ref _inFlight);
            try
            {
                await next(context);
            }
            finally
            {
                Interlocked.Decrement(ref _inFlight);
            }
        });
        if (Mode != PaymentMode.WithoutOncely)
        {
            app.UseIdempotency();
        }

        var endpoint = app.MapPost("/transfers", HandleAsync);
        if (Mode != PaymentMode.WithoutOncely)
        {
            endpoint.RequireIdempotencyKey().AllowAnonymousIdempotency();
        }

        if (Mode is PaymentMode.OneCommit or PaymentMode.OneCommitReservationApart)
        {
            endpoint.WithOneCommitReservation();
        }

        await app.StartAsync();
        _app = app;
        BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }

    // Two different accounts from the key (FNV-1a: the same key always picks the same pair).
    protected static (int From, int To) AccountsFor(string key)
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

    private async Task<IResult> HandleAsync(TransferRequest transfer, HttpContext context)
    {
        var execution = context.GetIdempotencyExecution();
        var key = execution?.Id.Key ?? context.Request.Headers[IdempotencyOptions.HeaderName].ToString();
        var (from, to) = AccountsFor(key);

        // The same answer in every mode; without Oncely it is simply written, with Oncely it is also stored.
        var response = IdempotentResponses.Json(StatusCodes.Status201Created, new { key, from, to, amount = transfer.Amount }, "/transfers/" + key);
        await TransferAsync(key, from, to, transfer.Amount, execution, response, context.RequestAborted);
        Interlocked.Increment(ref _runs);
        Interlocked.Increment(ref _totalRuns);
        _keys.TryAdd(key, 0);
        return response.ToResult();
    }
}

internal sealed record TransferRequest(long Amount);

/// <summary>
/// An HTTP cell on a <see cref="TransferServer"/> that also counts the write transactions per payment over the
/// cell's runs (PostgreSQL transaction ids): 2 on the two-commit path (reservation, then the ledger transaction), 1 on
/// the one-commit path and without Oncely.
/// </summary>
internal sealed class PaymentPathCell(HttpCell inner, TransferServer server) : Cell(inner.Variant, inner.Path)
{
    public override async Task<CellResult> MeasureAsync(int concurrency, int repetition, Timing timing)
    {
        var runsBefore = server.TotalRuns;
        var before = await server.WriteTransactionCounterAsync();
        var result = await inner.MeasureAsync(concurrency, repetition, timing);
        var after = await server.WriteTransactionCounterAsync();
        var runs = server.TotalRuns - runsBefore;
        if (Path != HttpCell.Execute || runs == 0 || before is not { } b || after is not { } a)
        {
            return result;
        }

        var commits = (a - b - 1) / (double)runs;
        return result with { Check = result.Check + string.Create(CultureInfo.InvariantCulture, $"; {commits:0.00} write commits/payment") };
    }
}
