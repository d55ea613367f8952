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

/// <summary>
/// One Kestrel server on 127.0.0.1 (a free port) with one trivial <c>POST /payments</c> endpoint, with or without
/// Oncely, plus the client that drives it. The handler counts its runs, so the run can prove it never executed twice.
/// </summary>
internal sealed class TestServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly HttpClient _client;
    private long _handlerRuns;

    private TestServer(WebApplication app, HttpClient client, CountingStore? store)
    {
        _app = app;
        _client = client;
        Store = store;
    }

    public CountingStore? Store { get; }

    public long HandlerRuns => Interlocked.Read(ref _handlerRuns);

    /// <param name="configureStore">Chooses the store on <c>AddIdempotency()</c>'s builder; <see langword="null"/> for no Oncely at all.</param>
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
        TestServer? server = null;
        if (useOncely)
        {
            app.UseIdempotency();
        }

        var endpoint = app.MapPost("/payments", (PaymentRequest payment) =>
        {
            var run = Interlocked.Increment(ref server!._handlerRuns);
            var id = "pay_" + run.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return TypedResults.Created("/payments/" + id, new PaymentReceipt(id, payment.Amount, "succeeded"));
        });
        if (useOncely)
        {
            endpoint.RequireIdempotencyKey().AllowAnonymousIdempotency();
        }

        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var client = new HttpClient(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = 512,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            UseProxy = false,
            AllowAutoRedirect = false,
        })
        {
            BaseAddress = new Uri(address),
            Timeout = TimeSpan.FromSeconds(60),
        };
        server = new TestServer(app, client, useOncely ? app.Services.GetRequiredService<CountingStore>() : null);
        return server;
    }

    /// <summary>Sends one payment and checks the answer: 201, and replayed or not as <paramref name="expectReplay"/> says.</summary>
    public async Task PostAsync(string key, long amount, bool? expectReplay)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/payments")
        {
            Content = new ByteArrayContent(Encoding.UTF8.GetBytes("{\"amount\":" + amount.ToString(System.Globalization.CultureInfo.InvariantCulture) + "}")),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.TryAddWithoutValidation(IdempotencyOptions.HeaderName, key);
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseContentRead);
        if (response.StatusCode != HttpStatusCode.Created)
        {
            throw new InvalidOperationException($"POST /payments with key {key} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }

        if (expectReplay is { } replay)
        {
            var replayed = response.Headers.TryGetValues(IdempotencyOptions.ReplayedHeaderName, out var values) && values.Contains("true");
            if (replayed != replay)
            {
                throw new InvalidOperationException($"POST /payments with key {key}: expected {(replay ? "a replay" : "an execution")}, got {(replayed ? "a replay" : "an execution")}.");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
