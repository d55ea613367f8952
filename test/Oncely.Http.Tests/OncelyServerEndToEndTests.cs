using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Logging;
using Oncely.AspNetCore;

namespace Oncely.Http.Tests;

/// <summary>The client handler against a real Oncely server (Kestrel on loopback, in-memory store).</summary>
public sealed class OncelyServerEndToEndTests : IAsyncLifetime
{
    private WebApplication _server = null!;
    private int _charges;
    private readonly TaskCompletionSource _slowGate = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddIdempotency();
        _server = builder.Build();
        _server.Urls.Add("http://127.0.0.1:0");
        _server.UseIdempotency();
        _server.MapPost("/charges", (Charge charge) =>
        {
            var id = Interlocked.Increment(ref _charges);
            return Results.Created($"/charges/{id}", new { id, charge.Amount });
        }).RequireIdempotencyKey().AllowAnonymousIdempotency();
        _server.MapPost("/slow-charges", async (Charge charge) =>
        {
            await _slowGate.Task;
            var id = Interlocked.Increment(ref _charges);
            return Results.Created($"/charges/{id}", new { id, charge.Amount });
        }).RequireIdempotencyKey().AllowAnonymousIdempotency();
        await _server.StartAsync();
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private HttpClient CreateClient(LoseFirstResponseHandler? loser = null)
    {
        var services = new ServiceCollection();
        var http = services.AddHttpClient("payments", c => c.BaseAddress = new Uri(_server.Urls.Single()))
            .AddIdempotencyKeys();
        http.AddStandardResilienceHandler(o =>
        {
            o.Retry.Delay = TimeSpan.FromMilliseconds(10);
            o.Retry.BackoffType = Polly.DelayBackoffType.Constant;
            o.Retry.UseJitter = false;
        });
        if (loser is not null)
        {
            http.AddHttpMessageHandler(() => loser);
        }

        return services.BuildServiceProvider().GetRequiredService<IHttpClientFactory>().CreateClient("payments");
    }

    private static StringContent Json(long amount) => new($"{{\"amount\":{amount}}}", Encoding.UTF8, "application/json");

    [Fact]
    public async Task Post_ResponseLostAfterServerCommitted_RetryReplaysAndChargesOnce()
    {
        var loser = new LoseFirstResponseHandler();
        var client = CreateClient(loser);
        var response = await client.PostAsync("/charges", Json(250));

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal(2, loser.Attempts);
        Assert.Equal("true", response.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(1, _charges);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(1, body.GetProperty("id").GetInt32());
        Assert.Equal(loser.Keys[0], loser.Keys[1]);
        Assert.Equal(loser.Keys[0], response.GetIdempotencyKey());
    }

    [Fact]
    public async Task Post_DoubleClickSameKeyWhileRunning_409RetriedAfterRetryAfter_AllSeeTheOneCharge()
    {
        var client = CreateClient();
        var key = Guid.NewGuid().ToString();
        var clicks = Enumerable.Range(0, 5).Select(_ =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/slow-charges") { Content = Json(99) };
            request.Headers.Add("Idempotency-Key", key);
            return client.SendAsync(request);
        }).ToArray();

        await Task.Delay(300);
        _slowGate.SetResult();
        var responses = await Task.WhenAll(clicks);

        Assert.Equal(1, _charges);
        Assert.All(responses, r => Assert.Equal(HttpStatusCode.Created, r.StatusCode));
        var bodies = await Task.WhenAll(responses.Select(r => r.Content.ReadAsStringAsync()));
        Assert.Single(bodies.Distinct());
        Assert.Equal(4, responses.Count(r => r.Headers.Contains("Idempotent-Replayed")));
    }

    [Fact]
    public async Task Post_TwoLogicalPayments_TwoKeysTwoCharges()
    {
        var client = CreateClient();
        var first = await client.PostAsync("/charges", Json(1));
        var second = await client.PostAsync("/charges", Json(1));
        Assert.NotEqual(first.GetIdempotencyKey(), second.GetIdempotencyKey());
        Assert.Equal(2, _charges);
        Assert.False(second.Headers.Contains("Idempotent-Replayed"));
    }

    public sealed record Charge(long Amount);

    /// <summary>Lets the first attempt reach the server, then loses its answer as a dropped connection would.</summary>
    private sealed class LoseFirstResponseHandler : DelegatingHandler
    {
        private int _attempts;

        public int Attempts => _attempts;

        public List<string> Keys { get; } = [];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            lock (Keys)
            {
                Keys.Add(request.Headers.GetValues("Idempotency-Key").Single());
            }

            var response = await base.SendAsync(request, cancellationToken);
            if (Interlocked.Increment(ref _attempts) == 1)
            {
                response.Dispose();
                throw new HttpRequestException("The connection was reset after the request was sent (simulated).");
            }

            return response;
        }
    }
}
