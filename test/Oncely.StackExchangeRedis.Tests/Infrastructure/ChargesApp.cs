using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Oncely.AspNetCore;

namespace Oncely.StackExchangeRedis.Tests.Infrastructure;

/// <summary>
/// The charges several app instances make, counted per key in one place (the test process), as a payment provider would
/// count them: a second charge for one key is a double execution whichever instance made it.
/// </summary>
public sealed class Ledger
{
    private readonly ConcurrentDictionary<string, int> _charges = new(StringComparer.Ordinal);
    private long _ids;

    public IReadOnlyDictionary<string, int> Charges => _charges;

    public long Charge(string key)
    {
        _charges.AddOrUpdate(key, 1, (_, n) => n + 1);
        return Interlocked.Increment(ref _ids);
    }
}

/// <summary>
/// One app instance as it runs in production: a <see cref="WebApplication"/> on Kestrel (127.0.0.1, a free port) with
/// Oncely on Redis through a connection of its own (the store makes and owns it), and one effectful endpoint,
/// <c>POST /charges</c>, whose effect is a charge in the shared <see cref="Ledger"/>.
/// </summary>
public sealed class ChargesApp : IAsyncDisposable
{
    public const string ProblemTypeBase = "https://oncely.dev/problems/";

    private readonly WebApplication _app;
    private int _runs;

    private ChargesApp(string name, WebApplication app, Uri address)
    {
        Name = name;
        _app = app;
        Client = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) }) { BaseAddress = address, Timeout = TimeSpan.FromSeconds(60) };
    }

    public string Name { get; }

    public HttpClient Client { get; }

    public int HandlerRuns => Volatile.Read(ref _runs);

    public IServiceProvider Services => _app.Services;

    public static async Task<ChargesApp> StartAsync(string name, string configuration, string keyPrefix, Ledger ledger, TimeSpan handlerDelay, Action<RedisIdempotencyStoreOptions>? configureStore = null, Action<IdempotencyOptions>? configureIdempotency = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddIdempotency(configureIdempotency).UseStackExchangeRedis(o =>
        {
            o.Configuration = configuration;
            o.KeyPrefix = keyPrefix;
            configureStore?.Invoke(o);
        });

        var app = builder.Build();
        ChargesApp? self = null;
        app.UseIdempotency();
        app.MapPost("/charges", async (HttpContext context, ChargeRequest charge) =>
        {
            Interlocked.Increment(ref self!._runs);
            await Task.Delay(handlerDelay);
            var key = context.GetIdempotencyExecution()!.Id.Key;
            var id = ledger.Charge(key);
            return Results.Created($"/charges/{id}", new ChargeResponse(id, key, charge.Amount, name));
        }).RequireIdempotencyKey().AllowAnonymousIdempotency();

        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }

        self = new ChargesApp(name, app, new Uri(app.Urls.Single()));
        return self;
    }

    public async Task<Answer> SendAsync(string key, long amount)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/charges")
        {
            Content = new StringContent($"{{\"amount\":{amount},\"reference\":\"{key}\"}}", Encoding.UTF8, "application/json"),
        };
        request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
        var started = DateTimeOffset.UtcNow;
        using var response = await Client.SendAsync(request);
        var body = await response.Content.ReadAsByteArrayAsync();
        return new Answer(
            Name,
            key,
            response.StatusCode,
            response.Headers.TryGetValues("Idempotent-Replayed", out var replayed) && replayed.Single() == "true",
            response.Content.Headers.ContentType?.MediaType,
            response.Headers.RetryAfter?.Delta,
            response.Headers.Location?.OriginalString,
            body,
            started,
            DateTimeOffset.UtcNow);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.DisposeAsync();
    }

    public sealed record ChargeRequest(long Amount, string Reference);

    public sealed record ChargeResponse(long Id, string Key, long Amount, string Instance);

    public sealed record Answer(string Instance, string Key, HttpStatusCode Status, bool Replayed, string? MediaType, TimeSpan? RetryAfter, string? Location, byte[] Body, DateTimeOffset Started, DateTimeOffset Finished)
    {
        public bool IsExecution => Status == HttpStatusCode.Created && !Replayed;

        public ChargeResponse Charge => JsonSerializer.Deserialize<ChargeResponse>(Body, JsonSerializerOptions.Web)!;

        public string? ProblemType
        {
            get
            {
                if (MediaType != "application/problem+json")
                {
                    return null;
                }

                using var document = JsonDocument.Parse(Body);
                var type = document.RootElement.GetProperty("type").GetString() ?? string.Empty;
                return type.StartsWith(ProblemTypeBase, StringComparison.Ordinal) ? type[ProblemTypeBase.Length..] : type;
            }
        }

        public override string ToString() => $"{Instance} {Key}: {(int)Status}{(Replayed ? " replayed" : "")} {Encoding.UTF8.GetString(Body)}";
    }

    public static void AssertReplayOrInProgress(Answer execution, Answer answer)
    {
        if (answer.Status == HttpStatusCode.Conflict)
        {
            Assert.False(answer.Replayed);
            Assert.Equal("idempotency-request-in-progress", answer.ProblemType);
            Assert.Equal(TimeSpan.FromSeconds(1), answer.RetryAfter);
            return;
        }

        AssertReplay(execution, answer);
    }

    public static void AssertReplay(Answer execution, Answer answer)
    {
        Assert.True(answer.Replayed, $"Expected a replay of {execution}, got {answer}");
        Assert.Equal(execution.Status, answer.Status);
        Assert.Equal(execution.MediaType, answer.MediaType);
        Assert.Equal(execution.Location, answer.Location);
        Assert.Equal(execution.Body, answer.Body);
    }
}
