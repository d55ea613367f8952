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

/// <summary>The payment request and answer of the benchmark's one endpoint.</summary>
internal sealed record PaymentRequest(long Amount);

internal sealed record PaymentReceipt(string Id, long Amount, string Status);

/// <summary>How often the handler ran during a cell, and whether any key ran it twice.</summary>
internal readonly record struct HandlerRuns(long Runs, long DistinctKeys);

/// <summary>
/// One Kestrel server on 127.0.0.1 (a free port) with one trivial <c>POST /payments</c> endpoint, with or without
/// Oncely. wrk drives it from outside; the handler records the key of every run, so a cell can prove that no key ran
/// twice, and a tiny middleware counts the requests in flight, so a cell starts only once the previous one drained.
/// </summary>
internal sealed class TestServer : ILoadTarget, IAsyncDisposable
{
    /// <summary>What wrk sends: a small JSON payment. The endpoint allows anonymous callers, so no Authorization.</summary>
    public static readonly RequestShape Payment = new("POST", "/payments", "{\"amount\":1234}", ["Content-Type: application/json"]);

    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, byte> _keys = new(StringComparer.Ordinal);
    private long _runs;
    private long _inFlight;

    private TestServer(WebApplication app) => _app = app;

    private CountingStore? _store;

    public RequestShape Request => Payment;

    public long? StoreCalls => _store?.Calls;

    public Uri BaseAddress { get; private set; } = null!;

    /// <param name="configureStore">Chooses the store on <c>AddIdempotency()</c>'s builder; <see langword="null"/> with <paramref name="inMemory"/> false for no Oncely at all.</param>
    public static async Task<TestServer> StartAsync(Action<IIdempotencyBuilder>? configureStore, bool inMemory)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(options => options.Listen(IPAddress.Loopback, 0));
        var useOncely = configureStore is not null || inMemory;
        if (useOncely)
        {
            var idempotency = builder.Services.AddIdempotency();
            configureStore?.Invoke(idempotency);

            // Wrap whatever store was chosen in a counter, through the public UseStore.
            var chosen = builder.Services.Last(d => d.ServiceType == typeof(IIdempotencyStore));
            var factory = chosen.ImplementationFactory ?? throw new InvalidOperationException("The store registration has no factory.");
            idempotency.UseStore(services => new CountingStore((IIdempotencyStore)factory(services)));
        }

        var app = builder.Build();
        var server = new TestServer(app);
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
        if (useOncely)
        {
            app.UseIdempotency();
        }

        var endpoint = app.MapPost("/payments", (PaymentRequest payment, HttpRequest request) =>
        {
            var run = Interlocked.Increment(ref server._runs);
            server._keys.TryAdd(request.Headers[IdempotencyOptions.HeaderName].ToString(), 0);
            var id = "pay_" + run.ToString(CultureInfo.InvariantCulture);
            return TypedResults.Created("/payments/" + id, new PaymentReceipt(id, payment.Amount, "succeeded"));
        });
        if (useOncely)
        {
            // The library refuses unauthenticated callers with 401 unless the endpoint opts in; wrk sends no credentials.
            endpoint.RequireIdempotencyKey().AllowAnonymousIdempotency();
        }

        await app.StartAsync();
        server.BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        server._store = useOncely ? app.Services.GetRequiredService<CountingStore>() : null;
        return server;
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
            using var request = new HttpRequestMessage(HttpMethod.Post, Payment.Path) { Content = new StringContent(Payment.Body, Encoding.UTF8) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            request.Headers.TryAddWithoutValidation(IdempotencyOptions.HeaderName, key);
            using var response = await client.SendAsync(request, cancellationToken);
            if (response.StatusCode != HttpStatusCode.Created || response.Headers.Contains(IdempotencyOptions.ReplayedHeaderName))
            {
                throw new InvalidOperationException($"Pre-populating key {key} answered {(int)response.StatusCode} (replayed: {response.Headers.Contains(IdempotencyOptions.ReplayedHeaderName)}): {await response.Content.ReadAsStringAsync(cancellationToken)}");
            }
        });
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
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
}
