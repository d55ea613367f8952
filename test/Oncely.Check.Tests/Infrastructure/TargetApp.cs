using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Oncely.Check.Tests.Infrastructure;

/// <summary>The one rule a target app breaks (or none).</summary>
public enum Flaw
{
    /// <summary>A careful hand-written implementation: every check passes.</summary>
    None,

    /// <summary>No idempotency at all: every request executes.</summary>
    NoIdempotency,

    /// <summary>A request without a key throws (a 500), as one library outside testing did.</summary>
    ServerErrorWithoutKey,

    /// <summary>Replays drop the <c>Location</c> header.</summary>
    ReplayWithoutLocation,

    /// <summary>The store looks a key up and writes it only after the handler ran: concurrent duplicates all execute.</summary>
    RacyStore,

    /// <summary>Keys are not scoped by caller: one caller's key replays another caller's answer.</summary>
    SharedScope,
}

/// <summary>
/// A small order API on Kestrel (a free port, real HTTP) with its own idempotency written for the purpose, breaking at
/// most one rule. <c>POST /orders</c> creates an order (201, Location, ETag; 300 ms of work so concurrent copies overlap even on a busy machine);
/// <c>GET /effects</c> answers how many orders the caller has. Callers are <c>Authorization: Bearer alice|bob</c>.
/// Every request that reaches the app is counted (<see cref="Hits"/>).
/// </summary>
public sealed class TargetApp : IAsyncDisposable
{
    public const string Alice = "Authorization: Bearer alice";
    public const string Bob = "Authorization: Bearer bob";
    public const string Body = "{\"item\":\"book\",\"amount\":100}";

    private readonly WebApplication _app;
    private readonly Flaw _flaw;
    private readonly ConcurrentDictionary<string, Entry> _records = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<(string Caller, string Id)> _orders = new();
    private int _hits;
    private int _elsewhere;
    private int _nextId;

    private TargetApp(Flaw flaw)
    {
        _flaw = flaw;
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Production" });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddProblemDetails();
        _app = builder.Build();
        _app.Use((context, next) =>
        {
            Interlocked.Increment(ref _hits);
            return next(context);
        });
        _app.MapPost("/orders", OrderAsync);
        _app.MapPost("/moved", () => Results.Redirect("/elsewhere", permanent: false, preserveMethod: true));
        _app.Map("/elsewhere", () =>
        {
            Interlocked.Increment(ref _elsewhere);
            return Results.Ok();
        });
        _app.MapGet("/effects", (HttpContext context) => Caller(context) is { } caller
            ? Results.Json(_orders.Count(order => order.Caller == caller))
            : Results.Problem(statusCode: 401));
    }

    public int Hits => Volatile.Read(ref _hits);

    /// <summary>Requests that reached <c>/elsewhere</c>, where <c>POST /moved</c> redirects (307).</summary>
    public int ElsewhereHits => Volatile.Read(ref _elsewhere);

    public string MovedUrl => Address + "moved";

    public string Url => Address + "orders";

    public string EffectsUrl => Address + "effects";

    private string Address => _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/') + "/";

    public static async Task<TargetApp> StartAsync(Flaw flaw)
    {
        var app = new TargetApp(flaw);
        await app._app.StartAsync();
        return app;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static string? Caller(HttpContext context)
        => context.Request.Headers.Authorization.ToString() is { Length: > 7 } value && value.StartsWith("Bearer ", StringComparison.Ordinal) ? value[7..] : null;

    private async Task OrderAsync(HttpContext context)
    {
        if (Caller(context) is not { } caller)
        {
            await Results.Problem(statusCode: 401, title: "Give Authorization: Bearer <caller>.").ExecuteAsync(context);
            return;
        }

        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer);
        var body = buffer.ToArray();
        if (_flaw == Flaw.NoIdempotency)
        {
            await WriteAsync(context, await ExecuteAsync(caller, body), replayed: false);
            return;
        }

        var values = context.Request.Headers["Idempotency-Key"];
        if (values.Count == 0)
        {
            if (_flaw == Flaw.ServerErrorWithoutKey)
            {
                throw new InvalidOperationException("Idempotency-Key header missing"); // the flaw: an unhandled exception, a 500
            }

            await Problem(context, 400, "idempotency-key-missing", "This operation requires an Idempotency-Key header.");
            return;
        }

        if (values.Count > 1 || ParseKey(values[0]!) is not { } key)
        {
            await Problem(context, 400, "idempotency-key-invalid", "The Idempotency-Key must be one string of 1 to 255 visible ASCII characters.");
            return;
        }

        var scope = _flaw == Flaw.SharedScope ? key : caller + "\n" + key;
        var fingerprint = Convert.ToHexString(SHA256.HashData(body));
        if (_flaw == Flaw.RacyStore)
        {
            // The flaw: look up, run, then write: nothing stops a copy that arrives while the first one runs.
            if (_records.TryGetValue(scope, out var seen))
            {
                await AnswerExistingAsync(context, seen, fingerprint);
                return;
            }

            var answer = await ExecuteAsync(caller, body);
            _records[scope] = new Entry(fingerprint) { Answer = answer };
            await WriteAsync(context, answer, replayed: false);
            return;
        }

        var reserved = new Entry(fingerprint);
        if (!_records.TryAdd(scope, reserved))
        {
            await AnswerExistingAsync(context, _records[scope], fingerprint);
            return;
        }

        var fresh = await ExecuteAsync(caller, body);
        reserved.Answer = fresh;
        await WriteAsync(context, fresh, replayed: false);
    }

    private async Task AnswerExistingAsync(HttpContext context, Entry entry, string fingerprint)
    {
        if (entry.Fingerprint != fingerprint)
        {
            await Problem(context, 422, "idempotency-key-reused", "This Idempotency-Key was used with another payload.");
        }
        else if (entry.Answer is not { } answer)
        {
            context.Response.Headers.RetryAfter = "1";
            await Problem(context, 409, "idempotency-request-in-progress", "A request with this Idempotency-Key is in progress.");
        }
        else
        {
            await WriteAsync(context, answer, replayed: true);
        }
    }

    private async Task<Answer> ExecuteAsync(string caller, byte[] body)
    {
        await Task.Delay(300);
        var id = "ord_" + Interlocked.Increment(ref _nextId);
        _orders.Enqueue((caller, id));
        var json = JsonSerializer.SerializeToUtf8Bytes(new { id, caller, request = JsonDocument.Parse(body).RootElement, createdAt = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() });
        return new Answer(201, json, "/orders/" + id, $"\"{id}-v1\"");
    }

    private Task WriteAsync(HttpContext context, Answer answer, bool replayed)
    {
        context.Response.StatusCode = answer.Status;
        context.Response.ContentType = "application/json";
        if (!(replayed && _flaw == Flaw.ReplayWithoutLocation))
        {
            context.Response.Headers.Location = answer.Location;
        }

        context.Response.Headers.ETag = answer.ETag;
        if (replayed)
        {
            context.Response.Headers["Idempotent-Replayed"] = "true";
        }

        return context.Response.Body.WriteAsync(answer.Body).AsTask();
    }

    private static Task Problem(HttpContext context, int status, string type, string detail)
        => Results.Problem(detail, statusCode: status, type: "https://example.com/problems/" + type).ExecuteAsync(context);

    /// <summary>The key of a structured-field string (<c>"abc"</c>) or a bare token (<c>abc</c>); <see langword="null"/> when malformed.</summary>
    private static string? ParseKey(string value)
    {
        var key = value.Length >= 2 && value[0] == '"' && value[^1] == '"' ? value[1..^1] : value;
        return key.Length is >= 1 and <= 255 && key.All(c => c is >= '!' and <= '~' and not '"' and not '\\') ? key : null;
    }

    private sealed record Answer(int Status, byte[] Body, string Location, string ETag);

    private sealed class Entry(string fingerprint)
    {
        public string Fingerprint { get; } = fingerprint;

        public volatile Answer? Answer;
    }
}
