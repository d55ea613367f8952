using System.Net;
using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.ApplicationParts;
using Microsoft.AspNetCore.Mvc.Controllers;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Oncely.AspNetCore.Tests;

/// <summary>
/// Named policies: an endpoint that names one gets its lease, expiration, status-code policy and body limits; every
/// other endpoint keeps the global options. Leases and expirations are read from the store (a fake clock stands still),
/// never timed.
/// </summary>
public sealed class IdempotencyPolicyTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);
    private const string Tenant = TestApp.DefaultUser;

    private sealed class Harness : IAsyncDisposable
    {
        public required PipelineApp App { get; init; }

        public required FakeTimeProvider Clock { get; init; }

        public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public System.Collections.Concurrent.ConcurrentDictionary<string, TaskCompletionSource> Entered { get; } = new();

        public TaskCompletionSource EnteredFor(string path) => Entered.GetOrAdd(path, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

        public Task<HttpResponseMessage> PostAsync(string path, string key, string json = "{\"amount\":100}") => App.Client.SendAsync(PipelineApp.Post(path, key, json));

        public async ValueTask DisposeAsync()
        {
            Gate.TrySetResult();
            await App.DisposeAsync();
        }
    }

    private static async Task<Harness> StartAsync(Action<WebApplication, Harness> endpoints, Action<IdempotencyOptions>? configure = null, Action<IServiceCollection>? services = null)
    {
        var clock = new FakeTimeProvider(Now);
        Harness? harness = null;
        var app = await PipelineApp.StartAsync(
            pipeline: (web, self) =>
            {
                web.UseAuthentication();
                web.UseIdempotency();
                harness = new Harness { App = self, Clock = clock };
                endpoints(web, harness);
            },
            services: s =>
            {
                s.AddSingleton<TimeProvider>(clock);
                services?.Invoke(s);
            },
            configure: o =>
            {
                o.AddPolicy("short", p =>
                {
                    p.Lease = TimeSpan.FromSeconds(6);
                    p.Expiration = TimeSpan.FromHours(1);
                });
                configure?.Invoke(o);
            });
        return harness!;
    }

    // A handler that signals it has started, then waits for the harness's gate: its record stays InProgress meanwhile.
    private static RequestDelegate Blocking(Harness harness, string path) => async context =>
    {
        harness.EnteredFor(path).TrySetResult();
        await harness.Gate.Task;
        context.Response.StatusCode = StatusCodes.Status201Created;
        await context.Response.WriteAsync("done");
    };

    private static IdempotencyRecordId Id(string operation, string key) => new(Tenant, operation, key);

    [Fact]
    public async Task Policy_LeaseAndExpiration_ReachTheStoreForItsEndpointOnly()
    {
        await using var harness = await StartAsync((web, h) =>
        {
            web.MapPost("/short", Blocking(h, "/short")).RequireIdempotencyKey("short");
            web.MapPost("/default", Blocking(h, "/default")).RequireIdempotencyKey();
        });
        var store = harness.App.Store;

        var shortRequest = harness.PostAsync("/short", "k");
        var defaultRequest = harness.PostAsync("/default", "k");
        await harness.EnteredFor("/short").Task.WaitAsync(TimeSpan.FromSeconds(30));
        await harness.EnteredFor("/default").Task.WaitAsync(TimeSpan.FromSeconds(30));

        var shortHeld = await store.GetAsync(Id("POST /short", "k"), default);
        var defaultHeld = await store.GetAsync(Id("POST /default", "k"), default);
        Assert.Equal(Now + TimeSpan.FromSeconds(6), shortHeld!.LeaseExpiresAt);
        Assert.Equal(Now + TimeSpan.FromHours(1), shortHeld.ExpiresAt);
        Assert.Equal(Now + TimeSpan.FromSeconds(30), defaultHeld!.LeaseExpiresAt);
        Assert.Equal(Now + TimeSpan.FromHours(24), defaultHeld.ExpiresAt);

        harness.Gate.SetResult();
        Assert.Equal(HttpStatusCode.Created, (await shortRequest).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await defaultRequest).StatusCode);
        Assert.Equal(Now + TimeSpan.FromHours(1), (await store.GetAsync(Id("POST /short", "k"), default))!.ExpiresAt);
        Assert.Equal(Now + TimeSpan.FromHours(24), (await store.GetAsync(Id("POST /default", "k"), default))!.ExpiresAt);
    }

    [Fact]
    public async Task Policy_LeaseRenewal_EveryThirdOfThePolicysLease()
    {
        await using var harness = await StartAsync((web, h) =>
        {
            web.MapPost("/short", Blocking(h, "/short")).RequireIdempotencyKey("short");
            web.MapPost("/default", Blocking(h, "/default")).RequireIdempotencyKey();
        });
        var store = harness.App.Store;
        var requests = new[] { harness.PostAsync("/short", "k"), harness.PostAsync("/default", "k") };
        await harness.EnteredFor("/short").Task.WaitAsync(TimeSpan.FromSeconds(30));
        await harness.EnteredFor("/default").Task.WaitAsync(TimeSpan.FromSeconds(30));

        // The policy's lease is 6 s, renewed every 2 s; the default lease is 30 s, renewed every 10 s.
        harness.Clock.Advance(TimeSpan.FromSeconds(3));

        var expected = Now + TimeSpan.FromSeconds(3) + TimeSpan.FromSeconds(6);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        IdempotencyRecord? renewed;
        while ((renewed = await store.GetAsync(Id("POST /short", "k"), default))!.LeaseExpiresAt != expected && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        Assert.Equal(expected, renewed.LeaseExpiresAt);
        Assert.Equal(Now + TimeSpan.FromSeconds(30), (await store.GetAsync(Id("POST /default", "k"), default))!.LeaseExpiresAt);
        harness.Gate.SetResult();
        await Task.WhenAll(requests);
    }

    [Fact]
    public async Task Policy_RetryableStatusCodes_ReleaseItsAnswersTheDefaultEndpointStores()
    {
        await using var harness = await StartAsync(
            (web, h) =>
            {
                web.MapPost("/retry/{code:int}", (int code) => Results.Json(new { code, call = h.App.Count($"retry-{code}") }, statusCode: code)).RequireIdempotencyKey("lookups");
                web.MapPost("/plain/{code:int}", (int code) => Results.Json(new { code, call = h.App.Count($"plain-{code}") }, statusCode: code)).RequireIdempotencyKey();
            },
            o => o.AddPolicy("lookups", p => p.RetryableStatusCodes = [404]));

        var policy404 = new[] { await harness.PostAsync("/retry/404", "a"), await harness.PostAsync("/retry/404", "a") };
        var policy409 = new[] { await harness.PostAsync("/retry/409", "b"), await harness.PostAsync("/retry/409", "b") };
        var default404 = new[] { await harness.PostAsync("/plain/404", "c"), await harness.PostAsync("/plain/404", "c") };
        var default409 = new[] { await harness.PostAsync("/plain/409", "d"), await harness.PostAsync("/plain/409", "d") };

        Assert.Equal(2, harness.App.CallsTo("retry-404"));
        Assert.Null(await harness.App.Store.GetAsync(Id("POST /retry/{code:int}", "a"), default));
        Assert.Equal(1, harness.App.CallsTo("retry-409"));
        Assert.True(policy409[1].Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(1, harness.App.CallsTo("plain-404"));
        Assert.True(default404[1].Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(2, harness.App.CallsTo("plain-409"));
        Assert.All(policy404.Concat(default404), r => Assert.Equal(HttpStatusCode.NotFound, r.StatusCode));
        Assert.All(default409, r => Assert.Equal(HttpStatusCode.Conflict, r.StatusCode));
    }

    [Fact]
    public async Task Policy_StoreServerErrors_ReplaysItsServerErrorsTheDefaultEndpointReleases()
    {
        await using var harness = await StartAsync(
            (web, h) =>
            {
                web.MapPost("/kept", () => Results.Json(new { call = h.App.Count("kept") }, statusCode: 503)).RequireIdempotencyKey("keep-errors");
                web.MapPost("/released", () => Results.Json(new { call = h.App.Count("released") }, statusCode: 503)).RequireIdempotencyKey();
            },
            o => o.AddPolicy("keep-errors", p => p.StoreServerErrors = true));

        await harness.PostAsync("/kept", "k");
        var replay = await harness.PostAsync("/kept", "k");
        await harness.PostAsync("/released", "k");
        await harness.PostAsync("/released", "k");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, replay.StatusCode);
        Assert.True(replay.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(1, harness.App.CallsTo("kept"));
        Assert.Equal(2, harness.App.CallsTo("released"));
    }

    [Fact]
    public async Task Policy_BodyLimits_RefuseLargerRequestsAndKeepNoLargerAnswers()
    {
        await using var harness = await StartAsync(
            (web, h) =>
            {
                web.MapPost("/small", () => Results.Text($"a longer answer, call {h.App.Count("small")}")).RequireIdempotencyKey("small-bodies");
                web.MapPost("/large", () => Results.Text($"a longer answer, call {h.App.Count("large")}")).RequireIdempotencyKey();
            },
            o => o.AddPolicy("small-bodies", p =>
            {
                p.MaxRequestBodySize = 16;
                p.MaxResponseBodySize = 8;
            }));
        const string Big = "{\"amount\":100,\"note\":\"more than sixteen bytes\"}";

        var refused = await harness.PostAsync("/small", "big", Big);
        var accepted = await harness.PostAsync("/large", "big", Big);
        await harness.PostAsync("/small", "k", "{\"amount\":1}");
        var omitted = await harness.PostAsync("/small", "k", "{\"amount\":1}");
        await harness.PostAsync("/large", "k", "{\"amount\":1}");
        var whole = await harness.PostAsync("/large", "k", "{\"amount\":1}");

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, refused.StatusCode);
        Assert.Contains("at most 16 bytes", (await DecisionTableTests.ProblemOf(refused, "idempotency-payload-too-large")).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        Assert.Equal("true", omitted.Headers.GetValues("Idempotent-Body-Omitted").Single());
        Assert.Equal(string.Empty, await omitted.Content.ReadAsStringAsync());
        Assert.Equal("a longer answer, call 2", await whole.Content.ReadAsStringAsync());
        Assert.False(whole.Headers.Contains("Idempotent-Body-Omitted"));
        Assert.Equal(1, harness.App.CallsTo("small"));
    }

    [Fact]
    public async Task Policy_KeyReusedStatusCode_AnswersItsOwnStatus()
    {
        await using var harness = await StartAsync(
            (web, _) =>
            {
                web.MapPost("/strict", () => Results.Ok()).RequireIdempotencyKey("conflicts");
                web.MapPost("/default", () => Results.Ok()).RequireIdempotencyKey();
            },
            o => o.AddPolicy("conflicts", p => p.KeyReusedStatusCode = StatusCodes.Status409Conflict));

        await harness.PostAsync("/strict", "k", "{\"amount\":1}");
        await harness.PostAsync("/default", "k", "{\"amount\":1}");
        var strict = await harness.PostAsync("/strict", "k", "{\"amount\":2}");
        var lenient = await harness.PostAsync("/default", "k", "{\"amount\":2}");

        Assert.Equal(HttpStatusCode.Conflict, strict.StatusCode);
        await DecisionTableTests.ProblemOf(strict, "idempotency-key-reused");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, lenient.StatusCode);
    }

    [Fact]
    public async Task Policy_OnARouteGroupAndSpelledInAnotherCase_AppliesToItsEndpoints()
    {
        await using var harness = await StartAsync((web, h) =>
        {
            var group = web.MapGroup("/group").RequireIdempotencyKey("SHORT");
            group.MapPost("/a", Blocking(h, "/group/a"));
            web.MapPost("/optional", Blocking(h, "/optional")).AllowIdempotencyKey("Short");
        });

        var grouped = harness.PostAsync("/group/a", "k");
        var optional = harness.PostAsync("/optional", "k");
        await harness.EnteredFor("/group/a").Task.WaitAsync(TimeSpan.FromSeconds(30));
        await harness.EnteredFor("/optional").Task.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(Now + TimeSpan.FromSeconds(6), (await harness.App.Store.GetAsync(Id("POST /group/a", "k"), default))!.LeaseExpiresAt);
        Assert.Equal(Now + TimeSpan.FromSeconds(6), (await harness.App.Store.GetAsync(Id("POST /optional", "k"), default))!.LeaseExpiresAt);
        harness.Gate.SetResult();
        await Task.WhenAll(grouped, optional);
    }

    [Fact]
    public async Task MvcAction_IdempotentAttributeNamesAPolicy_ItsLeaseReachesTheStore()
    {
        await using var harness = await StartAsync(
            (web, _) => web.MapControllers(),
            services: s => s.AddControllers().ConfigureApplicationPartManager(parts => parts.FeatureProviders.Add(new OnlyController(typeof(PolicyLedgerController)))));
        PolicyLedgerController.Gate = harness.Gate;
        PolicyLedgerController.Entered = harness.EnteredFor("mvc");

        var request = harness.PostAsync("/policy-ledger/pay", "k");
        await Task.WhenAny(harness.EnteredFor("mvc").Task, request).WaitAsync(TimeSpan.FromSeconds(30));
        if (request.IsCompleted)
        {
            Assert.Fail($"answered {(int)(await request).StatusCode} before the action ran");
        }

        var held = await harness.App.Store.GetAsync(Id("POST /policy-ledger/pay", "k"), default);
        Assert.Equal(Now + TimeSpan.FromSeconds(6), held!.LeaseExpiresAt);
        Assert.Equal(Now + TimeSpan.FromHours(1), held.ExpiresAt);
        harness.Gate.SetResult();
        Assert.Equal(HttpStatusCode.OK, (await request).StatusCode);
        var replay = await harness.PostAsync("/policy-ledger/pay", "k");
        Assert.True(replay.Headers.Contains("Idempotent-Replayed"));
    }

    [Fact]
    public async Task Start_EndpointNamesAnUnknownPolicy_FailsNamingTheEndpointThePolicyAndTheRegisteredOnes()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => StartAsync((web, _) =>
        {
            web.MapPost("/payments", () => Results.Ok()).RequireIdempotencyKey("paymnets");
            web.MapPost("/refunds", () => Results.Ok()).RequireIdempotencyKey("short");
        }));

        Assert.Contains("HTTP: POST /payments", error.Message, StringComparison.Ordinal);
        Assert.Contains("'paymnets'", error.Message, StringComparison.Ordinal);
        Assert.Contains("registered: 'short'", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("/refunds", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_MvcActionNamesAnUnknownPolicy_Fails()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => StartAsync(
            (web, _) => web.MapControllers(),
            services: s => s.AddControllers().ConfigureApplicationPartManager(parts => parts.FeatureProviders.Add(new OnlyController(typeof(UnknownPolicyController))))));

        Assert.Contains("'no-such-policy'", error.Message, StringComparison.Ordinal);
    }

    /// <summary>Adds exactly one controller type (the test controllers are [NonController], so no other app sees them).</summary>
    private sealed class OnlyController(Type controller) : IApplicationFeatureProvider<ControllerFeature>
    {
        public void PopulateFeature(IEnumerable<ApplicationPart> parts, ControllerFeature feature)
        {
            feature.Controllers.Clear();
            feature.Controllers.Add(controller.GetTypeInfo());
        }
    }
}

[NonController]
[Route("policy-ledger")]
public sealed class PolicyLedgerController : ControllerBase
{
    public static TaskCompletionSource Gate { get; set; } = new();

    public static TaskCompletionSource Entered { get; set; } = new();

    [HttpPost("pay")]
    [Idempotent(Policy = "short")]
    public async Task<IActionResult> Pay()
    {
        Entered.TrySetResult();
        await Gate.Task;
        return Ok(new { paid = true });
    }
}

[NonController]
[Route("unknown-policy")]
public sealed class UnknownPolicyController : ControllerBase
{
    [HttpPost]
    [Idempotent(Policy = "no-such-policy")]
    public IActionResult Post() => Ok();
}
