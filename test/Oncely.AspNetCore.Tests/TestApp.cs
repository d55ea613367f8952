using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Security.Claims;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Oncely.AspNetCore;

namespace Oncely.AspNetCore.Tests;

/// <summary>A real ASP.NET Core pipeline on TestServer with counting endpoints.</summary>
public sealed class TestApp : IAsyncDisposable
{
    private readonly WebApplication _app;

    private TestApp(WebApplication app, FakeTimeProvider clock, CapturingLoggerProvider logs)
    {
        _app = app;
        Clock = clock;
        Logs = logs;
    }

    /// <summary>The authenticated caller every request is sent as unless a test says otherwise (null: anonymous).</summary>
    public const string DefaultUser = "tester";

    public HttpClient Client { get; private set; } = null!;

    public FakeTimeProvider Clock { get; }

    public CapturingLoggerProvider Logs { get; }

    public ConcurrentDictionary<string, int> Calls { get; } = new();

    public TaskCompletionSource Gate { get; set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource Entered { get; set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public IIdempotencyStore Store => _app.Services.GetRequiredService<IIdempotencyStore>();

    public IServiceProvider Services => _app.Services;

    public TestServer Server => _app.GetTestServer();

    public int CallsTo(string name) => Calls.TryGetValue(name, out var n) ? n : 0;

    public static async Task<TestApp> StartAsync(Action<IdempotencyOptions>? configure = null, Func<IServiceProvider, IIdempotencyStore>? store = null, bool realClock = false, Action<IdempotencyMaintenanceOptions>? maintenance = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero));
        if (!realClock)
        {
            builder.Services.AddSingleton<TimeProvider>(clock);
        }

        var logs = new CapturingLoggerProvider();
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(logs);
        builder.Logging.SetMinimumLevel(LogLevel.Debug);
        builder.Services.AddAuthentication(TestAuthHandler.SchemeName).AddScheme<AuthenticationSchemeOptions, TestAuthHandler>(TestAuthHandler.SchemeName, null);
        builder.Services.AddAuthorization();
        var idempotency = builder.Services.AddIdempotency(o =>
        {
            o.ReplayedHeaders.Add("X-Extra-Replayed");
            configure?.Invoke(o);
        });
        if (store is not null)
        {
            idempotency.UseStore(store);
        }

        if (maintenance is not null)
        {
            idempotency.ConfigureMaintenance(maintenance);
        }

        var app = builder.Build();
        var testApp = new TestApp(app, clock, logs);
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
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseIdempotency();
        testApp.MapEndpoints(app);
        await app.StartAsync();
        testApp.Client = app.GetTestClient();
        return testApp;
    }

    public static HttpRequestMessage Post(string path, string? key, string? json = "{\"amount\":100}", string? user = DefaultUser)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path);
        if (json is not null)
        {
            request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        }

        if (key is not null)
        {
            request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
        }

        if (user is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Test", user);
        }

        return request;
    }

    public Task<HttpResponseMessage> SendAsync(HttpRequestMessage request) => Client.SendAsync(request);

    public Task<HttpResponseMessage> PostAsync(string path, string? key, string? json = "{\"amount\":100}", string? user = DefaultUser)
        => Client.SendAsync(Post(path, key, json, user));

    public ValueTask DisposeAsync() => _app.DisposeAsync();

    private int Count(string name) => Calls.AddOrUpdate(name, 1, (_, n) => n + 1);

    private void MapEndpoints(WebApplication app)
    {
        app.MapPost("/plain", () => Results.Ok(new { call = Count("plain") }));

        app.MapPost("/payments", (HttpContext context, Payment payment) =>
        {
            var n = Count("payments");
            context.Response.Headers.ETag = "\"v1\"";
            context.Response.Headers.Append("Set-Cookie", "session=secret");
            context.Response.Headers.Append("X-Not-Replayed", "nope");
            context.Response.Headers.Append("X-Extra-Replayed", "yes");
            return Results.Created($"/payments/{n}", new { id = n, amount = payment.Amount, user = context.User.Identity?.Name ?? "anonymous" });
        }).RequireIdempotencyKey();

        app.MapPost("/accounts/{id}/payments", (string id, Payment payment) =>
            Results.Created($"/accounts/{id}/payments/{Count("account-payments")}", new { account = id, amount = payment.Amount })).RequireIdempotencyKey();

        app.MapPost("/refunds", (Payment payment) => Results.Created("/refunds/1", new { call = Count("refunds"), amount = payment.Amount })).RequireIdempotencyKey();

        app.MapPost("/optional", () => Results.Ok(new { call = Count("optional") })).AllowIdempotencyKey();

        app.MapPost("/status/{code:int}", (int code) =>
        {
            var n = Count($"status-{code}");
            return Results.Json(new { call = n }, statusCode: code);
        }).RequireIdempotencyKey();

        app.MapPost("/throw", () =>
        {
            Count("throw");
            throw new InvalidOperationException("boom");
        }).RequireIdempotencyKey();

        app.MapPost("/slow", async () =>
        {
            var n = Count("slow");
            var gate = Gate; // read before signalling, so a test swapping Gate afterwards cannot release this request
            Entered.TrySetResult();
            await gate.Task;
            return Results.Created($"/slow/{n}", new { call = n });
        }).RequireIdempotencyKey();

        app.MapPost("/big/{size:int}", async (HttpContext context, int size) =>
        {
            Count("big");
            context.Response.StatusCode = 201;
            context.Response.ContentType = "application/octet-stream";
            context.Response.Headers.Location = "/big/1";
            var chunk = new byte[8192];
            for (var written = 0; written < size; written += chunk.Length)
            {
                chunk.AsSpan().Fill((byte)(written / chunk.Length % 251));
                await context.Response.Body.WriteAsync(chunk.AsMemory(0, Math.Min(chunk.Length, size - written)));
            }
        }).RequireIdempotencyKey();

        app.MapPost("/two-phase", async (HttpContext context) =>
        {
            var n = Count("two-phase");
            var execution = context.GetIdempotencyExecution()!;
            if (execution.ResumedFrom is null)
            {
                await execution.SetRecoveryPointAsync("phase-1");
                throw new InvalidOperationException("crash after phase 1");
            }

            return Results.Ok(new { call = n, resumedFrom = execution.ResumedFrom, downstreamKey = execution.DeriveKey("bank") });
        }).RequireIdempotencyKey();

        app.MapPost("/write/{mode}", async (HttpContext context, string mode) =>
        {
            Count($"write-{mode}");
            context.Response.ContentType = "text/plain";
            var bytes = Encoding.UTF8.GetBytes($"written with {mode}");
            switch (mode)
            {
                case "stream":
                    await context.Response.Body.WriteAsync(bytes);
                    break;
                case "sync":
                    context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpBodyControlFeature>()!.AllowSynchronousIO = true;
                    context.Response.Body.Write(bytes, 0, bytes.Length);
                    break;
                case "pipe":
                    await context.Response.BodyWriter.WriteAsync(bytes);
                    break;
                case "sendfile":
                    var path = Path.Combine(Path.GetTempPath(), $"oncely-sendfile-{Guid.NewGuid():N}.txt");
                    await File.WriteAllBytesAsync(path, bytes);
                    try
                    {
                        await context.Response.SendFileAsync(path);
                    }
                    finally
                    {
                        File.Delete(path);
                    }

                    break;
            }
        }).RequireIdempotencyKey();
    }

    public sealed record Payment(long Amount);
}

/// <summary>Authenticates "Authorization: Test &lt;user&gt;" as a principal with that NameIdentifier.</summary>
public sealed class TestAuthHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "Test";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Test ", StringComparison.Ordinal))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        var user = header["Test ".Length..];
        var claims = user == "no-id" ? new[] { new Claim("role", "x") } : new[] { new Claim(ClaimTypes.NameIdentifier, user), new Claim(ClaimTypes.Name, user) };
        var principal = new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName));
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName)));
    }
}

public sealed class CapturingLoggerProvider : ILoggerProvider
{
    public ConcurrentQueue<(EventId Id, LogLevel Level, string Message, IReadOnlyList<KeyValuePair<string, object?>> State)> Entries { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void Dispose()
    {
    }

    private sealed class Logger(CapturingLoggerProvider owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => owner.Entries.Enqueue((eventId, logLevel, formatter(state, exception), state as IReadOnlyList<KeyValuePair<string, object?>> ?? []));
    }
}
