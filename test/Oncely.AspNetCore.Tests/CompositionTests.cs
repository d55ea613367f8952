using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Oncely.AspNetCore.Tests;

/// <summary>
/// Oncely next to the middleware a payment API usually has (docs/composition.md): authentication and authorization,
/// rate limiting, output caching and response compression, in the recommended order and in the wrong one, through a
/// real pipeline.
/// </summary>
public sealed class CompositionTests
{
    private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static IdempotencyRecordId Record(string key, string user = TestApp.DefaultUser, string operation = "POST /payments") => new(user, operation, key);

    private static RouteHandlerBuilder MapPayments(WebApplication app, PipelineApp p)
        => app.MapPost("/payments", () => Results.Created("/payments/1", new { call = p.Count("pay") })).RequireIdempotencyKey();

    // ---- authentication and authorization ----

    [Theory]
    [InlineData("UseAuthentication()")]
    [InlineData("UseAuthorization()")]
    [InlineData("UseRouting()")]
    public async Task StartAsync_UseIdempotencyBeforeWhatItNeeds_RefusedNamingTheCall(string late)
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => PipelineApp.StartAsync((app, p) =>
        {
            switch (late)
            {
                case "UseAuthentication()":
                    app.UseRouting();
                    app.UseIdempotency();
                    app.UseAuthentication();
                    app.UseAuthorization();
                    break;
                case "UseAuthorization()":
                    app.UseRouting();
                    app.UseAuthentication();
                    app.UseIdempotency();
                    app.UseAuthorization();
                    break;
                default:
                    app.UseAuthentication();
                    app.UseAuthorization();
                    app.UseIdempotency();
                    app.UseRouting();
                    break;
            }

            MapPayments(app, p);
        }));

        Assert.Contains(late, error.Message, StringComparison.Ordinal);
        Assert.Contains("called after UseIdempotency()", error.Message, StringComparison.Ordinal);
        Assert.Contains("docs/composition.md", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task IdempotentEndpoint_UseIdempotencyMissing_EndpointRefusesToRunEveryRequest()
    {
        // What start-up cannot see (the middleware left out, or put where the endpoint is never known) the endpoint's own
        // guard still catches: it refuses to run rather than run unprotected.
        await using var app = await PipelineApp.StartAsync((app, p) =>
        {
            PipelineApp.UseCatchAll(app);
            MapPayments(app, p);
        });

        using var first = await app.Client.SendAsync(PipelineApp.Post("/payments", "key-1"));
        using var retry = await app.Client.SendAsync(PipelineApp.Post("/payments", "key-1"));

        Assert.Equal(HttpStatusCode.InternalServerError, first.StatusCode);
        Assert.Equal(HttpStatusCode.InternalServerError, retry.StatusCode);
        Assert.Equal(0, app.CallsTo("pay"));
    }

    [Fact]
    public async Task StartAsync_NoExplicitAuthenticationCall_FrameworkPutsItFirstAndEachCallerHasItsOwnScope()
    {
        // WebApplication adds UseAuthentication()/UseAuthorization() at the start of the pipeline when the application
        // does not call them: not a late call, and the tenant is known when Oncely runs.
        await using var app = await PipelineApp.StartAsync((app, p) =>
        {
            app.UseIdempotency();
            MapPayments(app, p);
        });

        using var alice = await app.Client.SendAsync(PipelineApp.Post("/payments", "shared-key", user: "alice"));
        using var bob = await app.Client.SendAsync(PipelineApp.Post("/payments", "shared-key", user: "bob"));

        Assert.Equal(HttpStatusCode.Created, alice.StatusCode);
        Assert.Equal(HttpStatusCode.Created, bob.StatusCode);
        Assert.False(bob.Headers.Contains(IdempotencyOptions.ReplayedHeaderName));
        Assert.Equal(2, app.CallsTo("pay"));
    }

    [Fact]
    public async Task Authorization_BeforeIdempotency_RefusalNotStoredSoAPermittedRetryRuns()
    {
        var permitted = false;
        await using var app = await PipelineApp.StartAsync(
            (app, p) =>
            {
                app.UseAuthentication();
                app.UseAuthorization();
                app.UseIdempotency();
                MapPayments(app, p).RequireAuthorization("payers");
            },
            services => services.AddAuthorizationBuilder().AddPolicy("payers", policy => policy.RequireAssertion(_ => permitted)));

        using var forbidden = await app.Client.SendAsync(PipelineApp.Post("/payments", "key-1"));
        using var anonymous = await app.Client.SendAsync(PipelineApp.Post("/payments", "key-1", user: null));
        permitted = true;
        using var retried = await app.Client.SendAsync(PipelineApp.Post("/payments", "key-1"));

        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal(HttpStatusCode.Created, retried.StatusCode);
        Assert.False(retried.Headers.Contains(IdempotencyOptions.ReplayedHeaderName));
        Assert.Equal(1, app.CallsTo("pay"));
    }

    // ---- rate limiting ----

    // One request at a time, no queue: a request that arrives while another holds the permit is shed with 429. A
    // request with "X-Hold: true" holds its permit until the test opens the gate.
    private Task<PipelineApp> StartRateLimitedAsync(bool limiterFirst) => PipelineApp.StartAsync(
        (app, p) =>
        {
            if (limiterFirst)
            {
                app.UseRateLimiter();
                app.UseIdempotency();
            }
            else
            {
                app.UseIdempotency();
                app.UseRateLimiter();
            }

            app.MapPost("/payments", async (HttpContext context) =>
            {
                var call = p.Count("pay");
                if (context.Request.Headers["X-Hold"] == "true")
                {
                    _entered.TrySetResult();
                    await _gate.Task;
                }

                return Results.Created($"/payments/{call}", new { call });
            }).RequireIdempotencyKey().RequireRateLimiting("one-at-a-time");
        },
        services => services.AddRateLimiter(limiter =>
        {
            limiter.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            limiter.AddConcurrencyLimiter("one-at-a-time", o =>
            {
                o.PermitLimit = 1;
                o.QueueLimit = 0;
            });
        }));

    private async Task<Task<HttpResponseMessage>> HoldThePermitAsync(PipelineApp app)
    {
        var request = PipelineApp.Post("/payments", "key-holder");
        request.Headers.Add("X-Hold", "true");
        var holder = app.Client.SendAsync(request);
        await _entered.Task;
        return holder;
    }

    [Fact]
    public async Task RateLimiter_BeforeIdempotency_ShedRequestNeverReachesTheStoreAndRunsOnRetry()
    {
        await using var app = await StartRateLimitedAsync(limiterFirst: true);
        var holder = await HoldThePermitAsync(app);

        using var shed = await app.Client.SendAsync(PipelineApp.Post("/payments", "key-b"));
        var recordWhileShed = await app.Store.GetAsync(Record("key-b"), default);
        _gate.SetResult();
        (await holder).Dispose();
        using var retried = await app.Client.SendAsync(PipelineApp.Post("/payments", "key-b"));

        Assert.Equal(HttpStatusCode.TooManyRequests, shed.StatusCode);
        Assert.Null(recordWhileShed);
        Assert.DoesNotContain(app.Logs.Entries, e => e.Id.Id == IdempotencyEventIds.Released);
        Assert.Equal(HttpStatusCode.Created, retried.StatusCode);
        Assert.Equal(2, app.CallsTo("pay"));
    }

    [Fact]
    public async Task RateLimiter_BeforeIdempotency_ReplayCostsAPermitLikeAnyRequest()
    {
        await using var app = await StartRateLimitedAsync(limiterFirst: true);
        (await app.Client.SendAsync(PipelineApp.Post("/payments", "key-a"))).Dispose();
        var holder = await HoldThePermitAsync(app);

        using var limitedReplay = await app.Client.SendAsync(PipelineApp.Post("/payments", "key-a"));
        _gate.SetResult();
        (await holder).Dispose();
        using var replay = await app.Client.SendAsync(PipelineApp.Post("/payments", "key-a"));

        Assert.Equal(HttpStatusCode.TooManyRequests, limitedReplay.StatusCode);
        Assert.Equal(HttpStatusCode.Created, replay.StatusCode);
        Assert.True(replay.Headers.Contains(IdempotencyOptions.ReplayedHeaderName));
        Assert.Equal(2, app.CallsTo("pay"));
    }

    [Fact]
    public async Task RateLimiter_AfterIdempotency_ShedRequestIsReservedThenReleasedAndReplaysBypassTheLimit()
    {
        await using var app = await StartRateLimitedAsync(limiterFirst: false);
        (await app.Client.SendAsync(PipelineApp.Post("/payments", "key-a"))).Dispose();
        var holder = await HoldThePermitAsync(app);

        using var shed = await app.Client.SendAsync(PipelineApp.Post("/payments", "key-b"));
        using var replay = await app.Client.SendAsync(PipelineApp.Post("/payments", "key-a"));
        var recordAfterShed = await app.Store.GetAsync(Record("key-b"), default);
        _gate.SetResult();
        (await holder).Dispose();

        Assert.Equal(HttpStatusCode.TooManyRequests, shed.StatusCode);
        Assert.Null(recordAfterShed); // 429 is never stored: the record was reserved, then released (two store writes)
        Assert.Contains(app.Logs.Entries, e => e.Id.Id == IdempotencyEventIds.Released);
        Assert.Equal(HttpStatusCode.Created, replay.StatusCode); // answered by Oncely before the limiter saw it
        Assert.True(replay.Headers.Contains(IdempotencyOptions.ReplayedHeaderName));
        Assert.Equal(2, app.CallsTo("pay"));
    }

    // ---- output caching ----

    [Fact]
    public async Task OutputCache_BeforeIdempotency_DefaultPolicyNeverCachesPostSoEachKeyRunsOnce()
    {
        await using var app = await PipelineApp.StartAsync(
            (app, p) =>
            {
                app.UseOutputCache();
                app.UseIdempotency();
                MapPayments(app, p);
            },
            services => services.AddOutputCache(o => o.AddBasePolicy(b => b.Cache())));

        using var a = await app.Client.SendAsync(PipelineApp.Post("/payments", "key-a"));
        using var b = await app.Client.SendAsync(PipelineApp.Post("/payments", "key-b"));
        using var replay = await app.Client.SendAsync(PipelineApp.Post("/payments", "key-a"));

        Assert.Equal(HttpStatusCode.Created, b.StatusCode);
        Assert.False(b.Headers.Contains(IdempotencyOptions.ReplayedHeaderName));
        Assert.True(replay.Headers.Contains(IdempotencyOptions.ReplayedHeaderName));
        Assert.Equal(2, app.CallsTo("pay"));
    }

    [Fact]
    public async Task OutputCache_OnAnIdempotentEndpoint_WarnedAtStartup()
    {
        await using var app = await PipelineApp.StartAsync(
            (app, p) =>
            {
                app.UseOutputCache();
                app.UseIdempotency();
                MapPayments(app, p).CacheOutput();
                app.MapPost("/quotes", () => Results.Ok()).CacheOutput();
            },
            services => services.AddOutputCache());

        var warning = Assert.Single(app.Logs.Entries, e => e.Id.Id == IdempotencyEventIds.OutputCachedIdempotentEndpoint);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("/payments", warning.Message, StringComparison.Ordinal);
    }

    // ---- request decompression ----

    private static HttpRequestMessage GzipPost(string key, string json, CompressionLevel level)
    {
        var request = PipelineApp.Post("/payments", key, json: null);
        using var compressed = new MemoryStream();
        using (var gzip = new GZipStream(compressed, level, leaveOpen: true))
        {
            gzip.Write(Encoding.UTF8.GetBytes(json));
        }

        request.Content = new ByteArrayContent(compressed.ToArray());
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Content.Headers.ContentEncoding.Add("gzip");
        return request;
    }

    private static Task<PipelineApp> StartDecompressingAsync(bool decompressionFirst) => PipelineApp.StartAsync(
        (app, p) =>
        {
            if (decompressionFirst)
            {
                app.UseRequestDecompression();
                app.UseIdempotency();
            }
            else
            {
                app.UseIdempotency();
                app.UseRequestDecompression();
            }

            MapPayments(app, p);
        },
        services => services.AddRequestDecompression());

    [Fact]
    public async Task RequestDecompression_BeforeIdempotency_SamePayloadCompressedDifferentlyIsTheSameRequest()
    {
        await using var app = await StartDecompressingAsync(decompressionFirst: true);
        const string json = "{\"amount\":100,\"currency\":\"EUR\",\"memo\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}";

        using var first = await app.Client.SendAsync(GzipPost("key-1", json, CompressionLevel.Fastest));
        using var retry = await app.Client.SendAsync(GzipPost("key-1", json, CompressionLevel.SmallestSize));

        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.True(retry.Headers.Contains(IdempotencyOptions.ReplayedHeaderName));
        Assert.Equal(1, app.CallsTo("pay"));
    }

    [Fact]
    public async Task RequestDecompression_AfterIdempotency_SamePayloadCompressedDifferentlyLooksLikeAnotherPayload()
    {
        await using var app = await StartDecompressingAsync(decompressionFirst: false);
        const string json = "{\"amount\":100,\"currency\":\"EUR\",\"memo\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}";

        using var first = await app.Client.SendAsync(GzipPost("key-1", json, CompressionLevel.Fastest));
        using var retry = await app.Client.SendAsync(GzipPost("key-1", json, CompressionLevel.SmallestSize));

        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, retry.StatusCode); // the compressed bytes were fingerprinted
        Assert.Equal(1, app.CallsTo("pay"));
    }

    // ---- response compression ----

    private static Task<PipelineApp> StartCompressedAsync(bool compressionFirst) => PipelineApp.StartAsync(
        (app, p) =>
        {
            if (compressionFirst)
            {
                app.UseResponseCompression();
                app.UseIdempotency();
            }
            else
            {
                app.UseIdempotency();
                app.UseResponseCompression();
            }

            app.MapPost("/payments", () => Results.Created("/payments/1", new { call = p.Count("pay"), memo = new string('x', 2000) })).RequireIdempotencyKey();
        },
        services => services.AddResponseCompression());

    private static HttpRequestMessage Post(string key, bool gzip)
    {
        var request = PipelineApp.Post("/payments", key);
        if (gzip)
        {
            request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("gzip"));
        }

        return request;
    }

    private static async Task<string> TextOf(HttpResponseMessage response)
    {
        var bytes = await response.Content.ReadAsByteArrayAsync();
        if (response.Content.Headers.ContentEncoding.Contains("gzip"))
        {
            await using var gzip = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
            using var reader = new StreamReader(gzip, Encoding.UTF8);
            return await reader.ReadToEndAsync();
        }

        return Encoding.UTF8.GetString(bytes);
    }

    [Fact]
    public async Task ResponseCompression_BeforeIdempotency_StoredPlainAndEachRetryEncodedAsItAsks()
    {
        await using var app = await StartCompressedAsync(compressionFirst: true);

        using var first = await app.Client.SendAsync(Post("key-1", gzip: true));
        using var plainRetry = await app.Client.SendAsync(Post("key-1", gzip: false));
        using var gzipRetry = await app.Client.SendAsync(Post("key-1", gzip: true));
        var stored = (await app.Store.GetAsync(Record("key-1"), default))!.Response!;

        Assert.Equal(["gzip"], first.Content.Headers.ContentEncoding);
        Assert.Empty(plainRetry.Content.Headers.ContentEncoding);
        Assert.Equal(["gzip"], gzipRetry.Content.Headers.ContentEncoding);
        Assert.True(plainRetry.Headers.Contains(IdempotencyOptions.ReplayedHeaderName));
        Assert.DoesNotContain(stored.Headers, h => string.Equals(h.Key, "Content-Encoding", StringComparison.OrdinalIgnoreCase));
        Assert.StartsWith("{\"call\":1", Encoding.UTF8.GetString(stored.Body.Span), StringComparison.Ordinal);
        Assert.Equal(await TextOf(first), await TextOf(plainRetry));
        Assert.Equal(1, app.CallsTo("pay"));
    }

    [Fact]
    public async Task ResponseCompression_AfterIdempotency_StoredCompressedAndReplayedCompressedEvenWithoutAcceptEncoding()
    {
        await using var app = await StartCompressedAsync(compressionFirst: false);

        using var first = await app.Client.SendAsync(Post("key-1", gzip: true));
        using var plainRetry = await app.Client.SendAsync(Post("key-1", gzip: false));
        var stored = (await app.Store.GetAsync(Record("key-1"), default))!.Response!;

        Assert.Contains(stored.Headers, h => string.Equals(h.Key, "Content-Encoding", StringComparison.OrdinalIgnoreCase) && h.Value == "gzip");
        Assert.Equal(["gzip"], plainRetry.Content.Headers.ContentEncoding);   // the pitfall: a client that did not ask for gzip gets it
        Assert.Equal(await TextOf(first), await TextOf(plainRetry));          // still decodable: Content-Encoding is stored with the body
        Assert.Equal(1, app.CallsTo("pay"));
    }
}
