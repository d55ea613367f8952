using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Oncely.AspNetCore;

namespace Oncely.Storage.Specification;

/// <summary>
/// One app instance as it runs in production: a <see cref="WebApplication"/> on Kestrel (127.0.0.1, a free port) with
/// Oncely on the store the caller chooses, and one effectful endpoint, <c>POST /charges</c>, whose effect is a charge in
/// an <see cref="IChargeLedger"/>. Each backend's test project has a small factory that picks the store and the ledger.
/// </summary>
public sealed class ChargesApp : IAsyncDisposable
{
    public const string ProblemTypeBase = "https://oncely.dev/problems/";

    private readonly WebApplication _app;
    private readonly HandlerCounter _runs;
    private readonly IAsyncDisposable? _owned;

    private ChargesApp(string name, WebApplication app, HandlerCounter runs, IAsyncDisposable? owned, Uri address)
    {
        Name = name;
        _app = app;
        _runs = runs;
        _owned = owned;
        Client = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            BaseAddress = address,
            Timeout = TimeSpan.FromSeconds(60),
        };
    }

    public string Name { get; }

    /// <summary>A client that talks to this instance over real HTTP.</summary>
    public HttpClient Client { get; }

    /// <summary>How many times the handler has been entered on this instance.</summary>
    public int HandlerRuns => _runs.Value;

    public IServiceProvider Services => _app.Services;

    /// <summary>Starts an instance.</summary>
    /// <param name="name">Written into each charge, so a replay shows which instance executed it.</param>
    /// <param name="ledger">Where the handler's effect lands.</param>
    /// <param name="handlerDelay">Work before the effect: widens the window in which retries race the execution.</param>
    /// <param name="useStore">Chooses and configures the store (<c>UsePostgreSql</c>, <c>UseStackExchangeRedis</c>…).</param>
    /// <param name="configureIdempotency">Changes the middleware's and engine's options.</param>
    /// <param name="owned">Disposed with the app (or when it fails to start): a data source made for this instance.</param>
    public static async Task<ChargesApp> StartAsync(
        string name,
        IChargeLedger ledger,
        TimeSpan handlerDelay,
        Action<IIdempotencyBuilder> useStore,
        Action<IdempotencyOptions>? configureIdempotency = null,
        IAsyncDisposable? owned = null)
    {
        var runs = new HandlerCounter();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        useStore(builder.Services.AddIdempotency(configureIdempotency));

        var app = builder.Build();
        app.UseIdempotency();
        app.MapPost("/charges", async (HttpContext context, ChargeRequest charge) =>
        {
            runs.Increment();
            await Task.Delay(handlerDelay);
            var key = context.GetIdempotencyExecution()!.Id.Key;
            var id = await ledger.ChargeAsync(key, charge.Amount, name);
            return Results.Created($"/charges/{id}", new ChargeResponse(id, key, charge.Amount, name));
        }).RequireIdempotencyKey().AllowAnonymousIdempotency();

        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            if (owned is not null)
            {
                await owned.DisposeAsync();
            }

            throw;
        }

        return new ChargesApp(name, app, runs, owned, new Uri(app.Urls.Single()));
    }

    /// <summary>A <c>POST /charges</c> with <paramref name="key"/>; the payload depends only on the key and the amount.</summary>
    public static HttpRequestMessage Charge(string key, long amount)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/charges")
        {
            Content = new StringContent($"{{\"amount\":{amount},\"reference\":\"{key}\"}}", Encoding.UTF8, "application/json"),
        };
        request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
        return request;
    }

    /// <summary>Sends a charge and reads the whole answer.</summary>
    public async Task<Answer> SendAsync(string key, long amount)
    {
        using var request = Charge(key, amount);
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
        if (_owned is not null)
        {
            await _owned.DisposeAsync();
        }
    }

    /// <summary>A 409 in-progress answer, or else a faithful replay of <paramref name="execution"/>.</summary>
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

    /// <summary>A replay of <paramref name="execution"/>: same status, media type, location and bytes.</summary>
    public static void AssertReplay(Answer execution, Answer answer)
    {
        Assert.True(answer.Replayed, $"Expected a replay of {execution}, got {answer}");
        Assert.Equal(execution.Status, answer.Status);
        Assert.Equal(execution.MediaType, answer.MediaType);
        Assert.Equal(execution.Location, answer.Location);
        Assert.Equal(execution.Body, answer.Body);
    }

    /// <summary>A 503 store-unavailable refusal that is not a replay.</summary>
    public static void AssertUnavailable(Answer answer)
    {
        Assert.True(answer.Status == HttpStatusCode.ServiceUnavailable, answer.ToString());
        Assert.Equal("idempotency-store-unavailable", answer.ProblemType);
        Assert.NotNull(answer.RetryAfter);
        Assert.False(answer.Replayed);
    }

    public sealed record ChargeRequest(long Amount, string Reference);

    public sealed record ChargeResponse(long Id, string Key, long Amount, string Instance);

    /// <summary>One answer as the client saw it.</summary>
    public sealed record Answer(
        string Instance,
        string Key,
        HttpStatusCode Status,
        bool Replayed,
        string? MediaType,
        TimeSpan? RetryAfter,
        string? Location,
        byte[] Body,
        DateTimeOffset Started,
        DateTimeOffset Finished)
    {
        /// <summary>The first answer, from the execution itself: 201 and not a replay.</summary>
        public bool IsExecution => Status == HttpStatusCode.Created && !Replayed;

        public string BodyText => Encoding.UTF8.GetString(Body);

        public ChargeResponse Charge => JsonSerializer.Deserialize<ChargeResponse>(Body, JsonSerializerOptions.Web)!;

        /// <summary>The problem type's last segment, for a problem+json answer; otherwise <see langword="null"/>.</summary>
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

        public override string ToString() => $"{Instance} {Key}: {(int)Status}{(Replayed ? " replayed" : "")} {BodyText}";
    }

    private sealed class HandlerCounter
    {
        private int _value;

        public int Value => Volatile.Read(ref _value);

        public void Increment() => Interlocked.Increment(ref _value);
    }
}
