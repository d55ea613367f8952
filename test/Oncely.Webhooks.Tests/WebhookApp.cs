using System.Collections.Concurrent;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Oncely.AspNetCore;
using StandardWebhooks;

namespace Oncely.Webhooks.Tests;

/// <summary>
/// A real ASP.NET Core pipeline on TestServer with Standard Webhooks endpoints that count their executions, a fake clock,
/// and deliveries signed by the independent <c>StandardWebhooks</c> package.
/// </summary>
public sealed class WebhookApp : IAsyncDisposable
{
    public static readonly string AcmeOldSecret = Secret(1);
    public static readonly string AcmeNewSecret = Secret(2);
    public static readonly string GlobexSecret = Secret(3);
    public static readonly string StrangerSecret = Secret(4);

    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, int> _calls = new();

    private WebhookApp(WebApplication app, FakeTimeProvider clock, ConcurrentQueue<EventId> events)
    {
        _app = app;
        Clock = clock;
        LoggedEvents = events;
    }

    public FakeTimeProvider Clock { get; }

    public HttpClient Client { get; private set; } = null!;

    public InMemoryIdempotencyStore Store => (InMemoryIdempotencyStore)_app.Services.GetRequiredService<IIdempotencyStore>();

    public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The event ids logged so far, in order.</summary>
    public ConcurrentQueue<EventId> LoggedEvents { get; }

    /// <summary>Every logged line's text (message and exception), in order: for tests that look at what the log holds.</summary>
    public ConcurrentQueue<string> LoggedTexts { get; private init; } = new();

    public static async Task<WebhookApp> StartAsync(Action<StandardWebhooksOptions>? configure = null, Action<WebApplication>? map = null, Action<IdempotencyOptions>? idempotency = null, DateTimeOffset? now = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        var clock = new FakeTimeProvider(now ?? new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero));
        builder.Services.AddSingleton<TimeProvider>(clock);
        var events = new ConcurrentQueue<EventId>();
        builder.Logging.ClearProviders();
        var texts = new ConcurrentQueue<string>();
        builder.Logging.AddProvider(new EventRecorder(events, texts));
        builder.Logging.SetMinimumLevel(LogLevel.Debug);
        builder.Services.AddIdempotency(idempotency).AddStandardWebhooks(o =>
        {
            o.AddSender("acme", AcmeOldSecret, AcmeNewSecret); // a receiver-side rotation: both accepted
            o.AddSender("globex", GlobexSecret);
            configure?.Invoke(o);
        });
        var app = builder.Build();
        var test = new WebhookApp(app, clock, events) { LoggedTexts = texts };

        // Like Kestrel: an unhandled exception becomes a 500 (TestServer would rethrow it into the test).
        app.Use(async (context, next) =>
        {
            try
            {
                await next(context);
            }
            catch (InvalidOperationException) when (!context.Response.HasStarted)
            {
                context.Response.Clear();
                context.Response.StatusCode = 500;
            }
        });
        app.UseIdempotency();
        if (map is not null)
        {
            map(app);
        }
        else
        {
            test.Map(app);
        }

        await app.StartAsync();
        test.Client = app.GetTestClient();
        return test;
    }

    public int CallsTo(string name) => _calls.TryGetValue(name, out var n) ? n : 0;

    /// <summary>A delivery as a provider sends it: signed now (by the fake clock) with <paramref name="secret"/>.</summary>
    public HttpRequestMessage Delivery(string path, string id, string body, string secret, DateTimeOffset? signedAt = null)
    {
        var timestamp = signedAt ?? Clock.GetUtcNow();
        var signature = new StandardWebhook(secret).Sign(id, timestamp, body);
        return Unsigned(path, id, body, timestamp.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture), signature);
    }

    /// <summary>A delivery with headers exactly as given (null: header absent).</summary>
    public static HttpRequestMessage Unsigned(string path, string? id, string body, string? timestamp, string? signature)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        if (id is not null)
        {
            request.Headers.TryAddWithoutValidation("webhook-id", id);
        }

        if (timestamp is not null)
        {
            request.Headers.TryAddWithoutValidation("webhook-timestamp", timestamp);
        }

        if (signature is not null)
        {
            request.Headers.TryAddWithoutValidation("webhook-signature", signature);
        }

        return request;
    }

    public Task<HttpResponseMessage> SendAsync(HttpRequestMessage request) => Client.SendAsync(request);

    public IdempotencyRecordId RecordId(string sender, string path, string key) => new(sender, "POST " + path, key);

    public ValueTask DisposeAsync() => _app.DisposeAsync();

    private static string Secret(byte seed) => "whsec_" + Convert.ToBase64String(Enumerable.Range(0, 32).Select(i => (byte)((i * 31) + seed)).ToArray());

    private int Count(string name) => _calls.AddOrUpdate(name, 1, (_, n) => n + 1);

    private void Map(WebApplication app)
    {
        app.MapPost("/webhooks/payments", async (HttpContext context) =>
        {
            var n = Count("payments");
            var body = await new StreamReader(context.Request.Body).ReadToEndAsync();
            return Results.Ok(new { call = n, received = body.Length });
        }).AcceptStandardWebhooks("acme", "globex");

        app.MapPost("/webhooks/acme-only", () => Results.Ok(new { call = Count("acme-only") })).AcceptStandardWebhooks("acme");

        app.MapPost("/webhooks/by-data-id", () => Results.Ok(new { call = Count("by-data-id") }))
            .AcceptStandardWebhooks("acme")
            .WithIdempotencyKeyFromJsonBody("/data/id");

        app.MapPost("/webhooks/slow", async () =>
        {
            var n = Count("slow");
            Entered.TrySetResult();
            await Gate.Task;
            return Results.Ok(new { call = n });
        }).AcceptStandardWebhooks("acme");

        app.MapPost("/webhooks/crash-once", () =>
        {
            if (Count("crash-once") == 1)
            {
                throw new InvalidOperationException("the handler crashed before answering");
            }

            return Results.Ok(new { settled = true });
        }).AcceptStandardWebhooks("acme");
    }

    private sealed class EventRecorder(ConcurrentQueue<EventId> events, ConcurrentQueue<string> texts) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Recorder(events, texts);

        public void Dispose()
        {
        }

        private sealed class Recorder(ConcurrentQueue<EventId> events, ConcurrentQueue<string> texts) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                events.Enqueue(eventId);
                texts.Enqueue(formatter(state, exception) + (exception is null ? string.Empty : " " + exception));
            }
        }
    }
}
