using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Oncely.Http.Tests;

/// <summary>One attempt as the server saw it.</summary>
public sealed record RecordedAttempt(string Method, string? IdempotencyKey, string? AliasKey, string Body);

/// <summary>
/// A real Kestrel server on 127.0.0.1 with a free port. Paths are <c>/{behaviour}/{scenario}/{n}</c>; every attempt is
/// recorded per scenario (a fresh GUID per test) with its method, key headers and body.
/// </summary>
public sealed class RecordingServer : IAsyncLifetime
{
    public const string InProgressType = "https://oncely.dev/problems/idempotency-request-in-progress";
    public const string KeyReusedType = "https://oncely.dev/problems/idempotency-key-reused";

    private readonly Dictionary<string, List<RecordedAttempt>> _attempts = [];
    private WebApplication? _app;

    public Uri BaseAddress { get; private set; } = null!;

    public IReadOnlyList<RecordedAttempt> AttemptsOf(string scenario)
    {
        lock (_attempts)
        {
            return _attempts.TryGetValue(scenario, out var list) ? [.. list] : [];
        }
    }

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        _app = builder.Build();
        _app.Urls.Add("http://127.0.0.1:0");
        _app.Run(HandleAsync);
        await _app.StartAsync();
        BaseAddress = new Uri(_app.Urls.Single());
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        var segments = context.Request.Path.Value!.Trim('/').Split('/');
        var behaviour = segments[0];
        var scenario = segments.Length > 1 ? segments[1] : "none";
        var n = segments.Length > 2 ? int.Parse(segments[2]) : 0;

        using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
        var body = await reader.ReadToEndAsync();
        var headers = context.Request.Headers;
        var attempt = Record(scenario, new RecordedAttempt(
            context.Request.Method,
            headers.TryGetValue("Idempotency-Key", out var key) ? key.ToString() : null,
            headers.TryGetValue("X-Idempotency-Key", out var alias) ? alias.ToString() : null,
            body));

        switch (behaviour)
        {
            case "fail503" when attempt <= n:
                context.Response.StatusCode = 503;
                return;
            case "drop" when attempt <= n:
                context.Abort();
                return;
            case "inprogress" when attempt <= n:
                await ProblemAsync(context, 409, InProgressType, retryAfter: "1");
                return;
            case "reused":
                await ProblemAsync(context, 409, KeyReusedType, retryAfter: "1");
                return;
            case "reused422":
                await ProblemAsync(context, 422, KeyReusedType, retryAfter: null);
                return;
            case "conflict" when attempt <= n:
                context.Response.StatusCode = 409;
                context.Response.Headers.RetryAfter = "1";
                await context.Response.WriteAsync("busy");
                return;
            case "conflict-no-retry-after":
                context.Response.StatusCode = 409;
                await context.Response.WriteAsync("conflict");
                return;
            case "mixed" when attempt == 1:
                context.Response.StatusCode = 503;
                return;
            case "mixed" when attempt == 2:
                context.Abort();
                return;
            case "mixed" when attempt == 3:
                await ProblemAsync(context, 409, InProgressType, retryAfter: "1");
                return;
            default:
                context.Response.StatusCode = context.Request.Method == "GET" ? 200 : 201;
                await context.Response.WriteAsync(body);
                return;
        }
    }

    private int Record(string scenario, RecordedAttempt attempt)
    {
        lock (_attempts)
        {
            if (!_attempts.TryGetValue(scenario, out var list))
            {
                _attempts[scenario] = list = [];
            }

            list.Add(attempt);
            return list.Count;
        }
    }

    private static async Task ProblemAsync(HttpContext context, int status, string type, string? retryAfter)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/problem+json";
        if (retryAfter is not null)
        {
            context.Response.Headers.RetryAfter = retryAfter;
        }

        await context.Response.WriteAsync($$"""{"type":"{{type}}","title":"t","status":{{status}}}""");
    }
}
