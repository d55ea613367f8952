using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;

namespace Oncely.AspNetCore.Tests;

/// <summary>One test (or more) per row of the decision table in ../shared/SPEC.md, through a real pipeline.</summary>
public class DecisionTableTests
{
    private const string Problems = "https://oncely.dev/problems/";

    internal static async Task<JsonElement> ProblemOf(HttpResponseMessage response, string type)
    {
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(Problems + type, problem.GetProperty("type").GetString());
        Assert.Equal((int)response.StatusCode, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("detail").GetString()));
        return problem;
    }

    [Fact]
    public async Task Row01_EndpointNotIdempotent_PassesThroughUntouched()
    {
        await using var app = await TestApp.StartAsync();
        var first = await app.PostAsync("/plain", "key-1");
        var second = await app.PostAsync("/plain", "key-1");
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.False(second.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(2, app.CallsTo("plain"));
        Assert.Equal(0, ((InMemoryIdempotencyStore)app.Store).Count);
    }

    [Fact]
    public async Task Row02_KeyMissingOnRequiredEndpoint_400KeyMissing()
    {
        await using var app = await TestApp.StartAsync();
        var response = await app.PostAsync("/payments", key: null);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await ProblemOf(response, "idempotency-key-missing");
        Assert.Equal(0, app.CallsTo("payments"));
    }

    [Fact]
    public async Task Row03_KeyMissingOnOptionalEndpoint_PassesThroughWithoutRecord()
    {
        await using var app = await TestApp.StartAsync();
        Assert.Equal(HttpStatusCode.OK, (await app.PostAsync("/optional", key: null)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await app.PostAsync("/optional", key: null)).StatusCode);
        Assert.Equal(2, app.CallsTo("optional"));
        Assert.Equal(0, ((InMemoryIdempotencyStore)app.Store).Count);

        // With a key the optional endpoint is idempotent.
        await app.PostAsync("/optional", "k");
        var replay = await app.PostAsync("/optional", "k");
        Assert.Equal(3, app.CallsTo("optional"));
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
    }

    [Theory]
    [InlineData("")]
    [InlineData("\"\"")]
    [InlineData("has space")]
    [InlineData("tab\there")]
    [InlineData("a,b")]
    [InlineData("\"unterminated")]
    [InlineData("caf\u00e9")]
    public async Task Row04_MalformedKey_400KeyInvalid_HandlerNotRun(string key)
    {
        await using var app = await TestApp.StartAsync();
        var response = await app.Server.SendAsync(context =>
        {
            context.Request.Method = "POST";
            context.Request.Path = "/payments";
            context.Request.ContentType = "application/json";
            context.Request.Body = new MemoryStream("{\"amount\":1}"u8.ToArray());
            context.Request.Headers["Idempotency-Key"] = key;
        });
        Assert.Equal(400, response.Response.StatusCode);
        Assert.Equal(0, app.CallsTo("payments"));
        var problem = (await JsonDocument.ParseAsync(response.Response.Body)).RootElement;
        Assert.Equal(Problems + "idempotency-key-invalid", problem.GetProperty("type").GetString());
    }

    [Fact]
    public async Task Row04_KeyOver255Characters_400KeyInvalid()
    {
        await using var app = await TestApp.StartAsync();
        var response = await app.PostAsync("/payments", new string('k', 256));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await ProblemOf(response, "idempotency-key-invalid");
        Assert.Equal(HttpStatusCode.Created, (await app.PostAsync("/payments", new string('k', 255))).StatusCode);
        Assert.Equal(1, app.CallsTo("payments"));
    }

    [Fact]
    public async Task Row04_SeveralValuesOrConflictingAlias_400KeyInvalid()
    {
        await using var app = await TestApp.StartAsync();
        var twice = TestApp.Post("/payments", "k1");
        twice.Headers.TryAddWithoutValidation("Idempotency-Key", "k2");
        Assert.Equal(HttpStatusCode.BadRequest, (await app.SendAsync(twice)).StatusCode);

        var conflicting = TestApp.Post("/payments", "k1");
        conflicting.Headers.TryAddWithoutValidation("X-Idempotency-Key", "k2");
        var response = await app.SendAsync(conflicting);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await ProblemOf(response, "idempotency-key-invalid");
        Assert.Equal(0, app.CallsTo("payments"));
    }

    [Fact]
    public async Task Row04_QuotedAndBareForms_AreTheSameKey()
    {
        await using var app = await TestApp.StartAsync();
        Assert.Equal(HttpStatusCode.Created, (await app.PostAsync("/payments", "\"order-1\"")).StatusCode);
        var bare = await app.PostAsync("/payments", "order-1");
        var alias = TestApp.Post("/payments", key: null);
        alias.Headers.TryAddWithoutValidation("X-Idempotency-Key", "order-1");
        var viaAlias = await app.SendAsync(alias);
        Assert.Equal("true", bare.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal("true", viaAlias.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(1, app.CallsTo("payments"));
    }

    [Fact]
    public async Task Row05_NewKey_RunsOnceAndStoresResponse()
    {
        await using var app = await TestApp.StartAsync();
        var response = await app.PostAsync("/payments", "new-key");
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.False(response.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(1, app.CallsTo("payments"));
        var record = await app.Store.GetAsync(new IdempotencyRecordId(TestApp.DefaultUser, "POST /payments", "new-key"), default);
        Assert.NotNull(record);
        Assert.Equal(IdempotencyRecordState.Completed, record.State);
        Assert.Equal(await response.Content.ReadAsByteArrayAsync(), record.Response!.Body.ToArray());
    }

    [Fact]
    public async Task Row06_SameKeySamePayload_ReplaysStatusBodyAndAllowListedHeaders()
    {
        await using var app = await TestApp.StartAsync();
        var first = await app.PostAsync("/payments", "replay-key", "{\"amount\":100}");
        // Same payload, other key order / whitespace / number spelling: the same request after JCS.
        var replay = await app.PostAsync("/payments", "replay-key", "{ \"amount\" : 1e2 }");

        Assert.Equal(1, app.CallsTo("payments"));
        Assert.Equal(first.StatusCode, replay.StatusCode);
        Assert.Equal(await first.Content.ReadAsByteArrayAsync(), await replay.Content.ReadAsByteArrayAsync());
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(first.Headers.Location, replay.Headers.Location);
        Assert.Equal("\"v1\"", replay.Headers.ETag!.Tag);
        Assert.Equal(first.Content.Headers.ContentType, replay.Content.Headers.ContentType);
        Assert.Equal("yes", replay.Headers.GetValues("X-Extra-Replayed").Single());
        Assert.True(first.Headers.Contains("Set-Cookie"));
        Assert.False(replay.Headers.Contains("Set-Cookie"));
        Assert.False(replay.Headers.Contains("X-Not-Replayed"));
    }

    [Fact]
    public async Task Row07_SameKeyWhileInProgress_409WithRetryAfter()
    {
        await using var app = await TestApp.StartAsync();
        var first = app.PostAsync("/slow", "busy-key");
        await app.Entered.Task;
        var duplicate = await app.PostAsync("/slow", "busy-key");
        Assert.Equal(HttpStatusCode.Conflict, duplicate.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(1), duplicate.Headers.RetryAfter!.Delta);
        var problem = await ProblemOf(duplicate, "idempotency-request-in-progress");
        Assert.Equal("busy-key", problem.GetProperty("idempotencyKey").GetString());
        app.Gate.SetResult();
        Assert.Equal(HttpStatusCode.Created, (await first).StatusCode);
        Assert.Equal(1, app.CallsTo("slow"));
    }

    [Fact]
    public async Task Row07_WaitConfigured_DuplicateWaitsAndReplays()
    {
        await using var app = await TestApp.StartAsync(o => o.InProgressWait = TimeSpan.FromSeconds(10), realClock: true);
        var first = app.PostAsync("/slow", "wait-key");
        await app.Entered.Task;
        var duplicate = app.PostAsync("/slow", "wait-key");
        await Task.Delay(150);
        Assert.False(duplicate.IsCompleted);
        app.Gate.SetResult();
        var original = await first;
        var replay = await duplicate;
        Assert.Equal(HttpStatusCode.Created, replay.StatusCode);
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(await original.Content.ReadAsStringAsync(), await replay.Content.ReadAsStringAsync());
        Assert.Equal(1, app.CallsTo("slow"));
    }

    [Fact]
    public async Task Row08_SameKeyDifferentPayload_422AuditedAndRecordUntouched()
    {
        await using var app = await TestApp.StartAsync();
        var original = await app.PostAsync("/payments", "reused", "{\"amount\":100,\"cardNumber\":\"4242424242424242\"}");
        var reused = await app.PostAsync("/payments", "reused", "{\"amount\":999,\"cardNumber\":\"4242424242424242\"}");

        Assert.Equal((HttpStatusCode)422, reused.StatusCode);
        await ProblemOf(reused, "idempotency-key-reused");
        Assert.Equal(1, app.CallsTo("payments"));

        var audit = Assert.Single(app.Logs.Entries, e => e.Id.Id == IdempotencyEventIds.KeyReused);
        var state = audit.State.ToDictionary(p => p.Key, p => p.Value);
        Assert.Equal("reused", state["Key"]);
        Assert.NotEqual(state["StoredFingerprint"], state["AttemptedFingerprint"]);
        Assert.Matches("^[0-9a-f]{64}$", (string)state["StoredFingerprint"]!);
        Assert.Contains("999", (string)state["Payload"]!);
        Assert.DoesNotContain("4242424242424242", (string)state["Payload"]!);

        // The original record still replays the original answer.
        var replay = await app.PostAsync("/payments", "reused", "{\"amount\":100,\"cardNumber\":\"4242424242424242\"}");
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(await original.Content.ReadAsStringAsync(), await replay.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Row08_SameKeyDifferentPayloadWhileInProgress_422()
    {
        await using var app = await TestApp.StartAsync();
        var first = app.PostAsync("/slow", "k", "{\"amount\":1}");
        await app.Entered.Task;
        var reused = await app.PostAsync("/slow", "k", "{\"amount\":2}");
        Assert.Equal((HttpStatusCode)422, reused.StatusCode);
        app.Gate.SetResult();
        await first;
    }

    [Fact]
    public async Task Row08_StatusConfigurable_409()
    {
        await using var app = await TestApp.StartAsync(o => o.KeyReusedStatusCode = 409);
        await app.PostAsync("/payments", "k", "{\"amount\":1}");
        var reused = await app.PostAsync("/payments", "k", "{\"amount\":2}");
        Assert.Equal(HttpStatusCode.Conflict, reused.StatusCode);
        await ProblemOf(reused, "idempotency-key-reused");
    }

    [Fact]
    public async Task Row08_SameRoutePatternOtherPath_IsAReusedKey()
    {
        await using var app = await TestApp.StartAsync();
        Assert.Equal(HttpStatusCode.Created, (await app.PostAsync("/accounts/a1/payments", "k")).StatusCode);
        Assert.Equal((HttpStatusCode)422, (await app.PostAsync("/accounts/a2/payments", "k")).StatusCode);
        Assert.Equal(1, app.CallsTo("account-payments"));
    }

    [Fact]
    public async Task Row09_SameKeyOtherTenant_IndependentRecordAndNoLeak()
    {
        await using var app = await TestApp.StartAsync();
        var alice = await app.PostAsync("/payments", "shared-key", user: "alice");
        var bob = await app.PostAsync("/payments", "shared-key", user: "bob");
        Assert.Equal(HttpStatusCode.Created, bob.StatusCode);
        Assert.False(bob.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(2, app.CallsTo("payments"));
        Assert.Contains("\"user\":\"bob\"", await bob.Content.ReadAsStringAsync());
        Assert.DoesNotContain("alice", await bob.Content.ReadAsStringAsync());

        var bobAgain = await app.PostAsync("/payments", "shared-key", user: "bob");
        Assert.Equal(await bob.Content.ReadAsStringAsync(), await bobAgain.Content.ReadAsStringAsync());
        var anonymous = await app.PostAsync("/payments", "shared-key", user: null);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal(2, app.CallsTo("payments"));
        Assert.NotEqual(await alice.Content.ReadAsStringAsync(), await bob.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Row09_SameKeyOtherOperation_IndependentRecord()
    {
        await using var app = await TestApp.StartAsync();
        Assert.Equal(HttpStatusCode.Created, (await app.PostAsync("/payments", "k")).StatusCode);
        var refund = await app.PostAsync("/refunds", "k");
        Assert.Equal(HttpStatusCode.Created, refund.StatusCode);
        Assert.False(refund.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(1, app.CallsTo("refunds"));
    }

    [Fact]
    public async Task Row09_AuthenticatedWithoutIdClaim_RefusedNotShared()
    {
        await using var app = await TestApp.StartAsync();
        var response = await app.PostAsync("/payments", "k", user: "no-id");
        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        await ProblemOf(response, "idempotency-tenant-unresolved");
        Assert.Equal(0, app.CallsTo("payments"));
    }

    [Theory]
    [InlineData(200)]
    [InlineData(201)]
    [InlineData(302)]
    [InlineData(400)]
    [InlineData(404)]
    [InlineData(422)]
    public async Task Row10_DeterministicAnswers_StoredAndReplayed(int status)
    {
        await using var app = await TestApp.StartAsync();
        var first = await app.PostAsync($"/status/{status}", "k");
        var second = await app.PostAsync($"/status/{status}", "k");
        Assert.Equal(status, (int)first.StatusCode);
        Assert.Equal(status, (int)second.StatusCode);
        Assert.Equal("true", second.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(1, app.CallsTo($"status-{status}"));
    }

    [Theory]
    [InlineData(500)]
    [InlineData(503)]
    [InlineData(408)]
    [InlineData(409)]
    [InlineData(425)]
    [InlineData(429)]
    public async Task Row11_RetryableAnswers_ReleasedSoRetryRunsAgain(int status)
    {
        await using var app = await TestApp.StartAsync();
        await app.PostAsync($"/status/{status}", "k");
        var second = await app.PostAsync($"/status/{status}", "k");
        Assert.Equal(status, (int)second.StatusCode);
        Assert.False(second.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(2, app.CallsTo($"status-{status}"));
    }

    [Fact]
    public async Task Row11_HandlerThrew_ReleasedSoRetryRunsAgain()
    {
        await using var app = await TestApp.StartAsync();
        Assert.Equal(HttpStatusCode.InternalServerError, (await app.PostAsync("/throw", "k")).StatusCode);
        Assert.Equal(HttpStatusCode.InternalServerError, (await app.PostAsync("/throw", "k")).StatusCode);
        Assert.Equal(2, app.CallsTo("throw"));
        Assert.Null(await app.Store.GetAsync(new IdempotencyRecordId(TestApp.DefaultUser, "POST /throw", "k"), default));
    }

    [Fact]
    public async Task Row11_StoreServerErrorsOption_5xxReplayed()
    {
        await using var app = await TestApp.StartAsync(o => o.StoreServerErrors = true);
        await app.PostAsync("/status/500", "k");
        var second = await app.PostAsync("/status/500", "k");
        Assert.Equal("true", second.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(1, app.CallsTo("status-500"));
    }

    [Fact]
    public async Task Row11_RecoveryPointRecorded_RetryResumesThere()
    {
        await using var app = await TestApp.StartAsync();
        Assert.Equal(HttpStatusCode.InternalServerError, (await app.PostAsync("/two-phase", "k")).StatusCode);
        var record = await app.Store.GetAsync(new IdempotencyRecordId(TestApp.DefaultUser, "POST /two-phase", "k"), default);
        Assert.Equal("phase-1", record!.RecoveryPoint);

        var retry = await app.PostAsync("/two-phase", "k");
        Assert.Equal(HttpStatusCode.OK, retry.StatusCode);
        var body = JsonDocument.Parse(await retry.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("phase-1", body.GetProperty("resumedFrom").GetString());
        Assert.Equal(2, app.CallsTo("two-phase"));
        var replay = await app.PostAsync("/two-phase", "k");
        Assert.Equal(await retry.Content.ReadAsStringAsync(), await replay.Content.ReadAsStringAsync());
        Assert.Equal(2, app.CallsTo("two-phase"));
    }

    [Fact]
    public async Task Row12_ProcessDiedMidRequest_LeaseExpiresRetryTakesOverStaleCompletionRefused()
    {
        await using var app = await TestApp.StartAsync();
        // A worker reserved this exact request and then died: its reservation is all that is left of it.
        var id = new IdempotencyRecordId(TestApp.DefaultUser, "POST /payments", "k");
        var fingerprint = RequestFingerprint.Compute(new FingerprintInput("POST", "/payments")
        {
            ContentType = "application/json; charset=utf-8",
            Body = "{\"amount\":100}"u8.ToArray(),
        });
        var dead = await app.Store.TryReserveAsync(id, fingerprint, TimeSpan.FromSeconds(30), TimeSpan.FromHours(24), default);
        Assert.Equal(ReservationOutcome.Acquired, dead.Outcome);

        var duringLease = await app.PostAsync("/payments", "k");
        Assert.Equal(HttpStatusCode.Conflict, duringLease.StatusCode);
        Assert.Equal(0, app.CallsTo("payments"));

        app.Clock.Advance(TimeSpan.FromSeconds(31));
        var takeOver = await app.PostAsync("/payments", "k");
        Assert.Equal(HttpStatusCode.Created, takeOver.StatusCode);
        Assert.Equal(1, app.CallsTo("payments"));
        Assert.Contains(app.Logs.Entries, e => e.Id.Id == IdempotencyEventIds.TakenOver);

        // The dead worker's token can no longer complete (or release) the record.
        var staleAnswer = new IdempotentResponse(200, [], "stale"u8.ToArray());
        Assert.False(await app.Store.TryCompleteAsync(id, dead.Record.FencingToken, staleAnswer, TimeSpan.FromHours(24), default));
        Assert.False(await app.Store.TryReleaseAsync(id, dead.Record.FencingToken, default));
        var replay = await app.PostAsync("/payments", "k");
        Assert.Equal(await takeOver.Content.ReadAsStringAsync(), await replay.Content.ReadAsStringAsync());
        Assert.Equal(1, app.CallsTo("payments"));
    }

    [Fact]
    public async Task Row12_StaleWorkerFinishesAfterTakeOver_ItsCompletionIsRefused()
    {
        // A worker whose renewals stopped reaching the store (paused, cut off) while its handler still runs.
        await using var app = await TestApp.StartAsync(o => o.RenewLease = false);
        var firstGate = app.Gate;
        var stale = app.PostAsync("/slow", "k");
        await app.Entered.Task;
        app.Clock.Advance(TimeSpan.FromSeconds(31));

        // The take-over runs to completion first.
        app.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        app.Gate.SetResult();
        var takeOver = await app.PostAsync("/slow", "k");
        Assert.Equal(HttpStatusCode.Created, takeOver.StatusCode);
        Assert.False(takeOver.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(2, app.CallsTo("slow"));

        // Now the stale worker finishes: its answer must not replace the stored one.
        firstGate.SetResult();
        Assert.Equal(HttpStatusCode.Created, (await stale).StatusCode);
        await WaitUntil(() => app.Logs.Entries.Any(e => e.Id.Id == IdempotencyEventIds.LeaseLost));
        var replay = await app.PostAsync("/slow", "k");
        Assert.Equal(await takeOver.Content.ReadAsStringAsync(), await replay.Content.ReadAsStringAsync());
        Assert.Equal(2, app.CallsTo("slow"));
    }

    [Fact]
    public async Task Row13_StoreThrows_503RetryAfter_HandlerNotRun()
    {
        await using var app = await TestApp.StartAsync(store: _ => new FaultyStore(new InMemoryIdempotencyStore()) { FailReserve = true });
        var response = await app.PostAsync("/payments", "k");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
        await ProblemOf(response, "idempotency-store-unavailable");
        Assert.Equal(0, app.CallsTo("payments"));
    }

    [Fact]
    public async Task Row13_StoreHangs_TimesOutTo503_HandlerNotRun()
    {
        await using var app = await TestApp.StartAsync(
            o => o.StoreTimeout = TimeSpan.FromMilliseconds(200),
            store: _ => new FaultyStore(new InMemoryIdempotencyStore()) { HangReserve = true },
            realClock: true);
        var response = await app.PostAsync("/payments", "k");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        await ProblemOf(response, "idempotency-store-unavailable");
        Assert.Equal(0, app.CallsTo("payments"));
    }

    [Fact]
    public async Task Row14_RecordOlderThanTtl_TreatedAsAbsentAndPurged()
    {
        await using var app = await TestApp.StartAsync();
        await app.PostAsync("/payments", "k");
        app.Clock.Advance(TimeSpan.FromHours(24) + TimeSpan.FromSeconds(1));
        var again = await app.PostAsync("/payments", "k");
        Assert.False(again.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(2, app.CallsTo("payments"));

        await app.PostAsync("/refunds", "other");
        Assert.Equal(2, ((InMemoryIdempotencyStore)app.Store).Count);

        // The hosted sweeper runs on its timer (every 5 minutes by default) and deletes what has expired.
        app.Clock.Advance(TimeSpan.FromHours(25));
        await WaitUntil(() => ((InMemoryIdempotencyStore)app.Store).Count == 0);
        Assert.Contains(app.Logs.Entries, e => e.Id.Id == IdempotencyEventIds.Purged);
    }

    [Fact]
    public async Task Row14_Sweeper_PurgesInBoundedBatchesUntilNoneLeft()
    {
        await using var app = await TestApp.StartAsync(maintenance: o => o.PurgeInterval = IdempotencyMaintenanceOptions.MaxPurgeInterval);
        for (var i = 0; i < 5; i++)
        {
            await app.PostAsync("/refunds", $"k{i}");
        }

        app.Clock.Advance(TimeSpan.FromHours(25));
        await app.PostAsync("/refunds", "live");
        var maintenance = app.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>().OfType<IdempotencyStoreMaintenance>().Single();
        Assert.Equal(5, await maintenance.PurgeAsync((IIdempotencyStoreSweeper)app.Store, 2, default));
        Assert.Equal(1, ((InMemoryIdempotencyStore)app.Store).Count);
    }

    [Fact]
    public async Task Row21_HandlerRunsThreeTimesItsLease_LeaseRenewedRetriesGet409AndItRunsOnce()
    {
        // Regression (issue 9, item 17): a handler slower than its lease was taken over while it still ran.
        await using var app = await TestApp.StartAsync(o => o.Lease = TimeSpan.FromSeconds(1), realClock: true);
        var first = app.PostAsync("/slow", "k");
        await app.Entered.Task;

        var retries = new List<HttpResponseMessage>();
        for (var i = 0; i < 2; i++)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(1400));
            retries.Add(await app.PostAsync("/slow", "k"));
        }

        app.Gate.SetResult();
        var answer = await first;
        var replay = await app.PostAsync("/slow", "k");

        Assert.All(retries, r =>
        {
            Assert.Equal(HttpStatusCode.Conflict, r.StatusCode);
            Assert.Equal("1", r.Headers.GetValues("Retry-After").Single());
        });
        Assert.Equal(HttpStatusCode.Created, answer.StatusCode);
        Assert.Equal(HttpStatusCode.Created, replay.StatusCode);
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(await answer.Content.ReadAsStringAsync(), await replay.Content.ReadAsStringAsync());
        Assert.Equal(1, app.CallsTo("slow"));
        Assert.DoesNotContain(app.Logs.Entries, e => e.Id.Id is IdempotencyEventIds.TakenOver or IdempotencyEventIds.LeaseRenewalFailed or IdempotencyEventIds.LeaseRenewalRefused);
    }

    [Fact]
    public async Task Row21_WhileHandlerRuns_LeaseRenewedEveryThirdOfIt()
    {
        await using var app = await TestApp.StartAsync(o => o.Lease = TimeSpan.FromSeconds(30));
        var id = new IdempotencyRecordId("alice", "POST /slow", "k");
        var first = app.PostAsync("/slow", "k", user: "alice");
        await app.Entered.Task;
        var reserved = await app.Store.GetAsync(id, default);

        app.Clock.Advance(TimeSpan.FromSeconds(10));
        await WaitUntil(() => app.Store.GetAsync(id, default).AsTask().Result!.LeaseExpiresAt > reserved!.LeaseExpiresAt);

        Assert.Equal(app.Clock.GetUtcNow() + TimeSpan.FromSeconds(30), (await app.Store.GetAsync(id, default))!.LeaseExpiresAt);
        app.Gate.SetResult();
        Assert.Equal(HttpStatusCode.Created, (await first).StatusCode);
        app.Clock.Advance(TimeSpan.FromMinutes(5));
        var replay = await app.PostAsync("/slow", "k", user: "alice");
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(1, app.CallsTo("slow"));
    }

    [Fact]
    public async Task Row15_BodyOverFingerprintLimit_413NothingExecuted()
    {
        await using var app = await TestApp.StartAsync(o => o.MaxRequestBodySize = 64);
        var big = "{\"amount\":1,\"memo\":\"" + new string('x', 100) + "\"}";
        var declared = await app.PostAsync("/payments", "k", big);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, declared.StatusCode);
        await ProblemOf(declared, "idempotency-payload-too-large");

        // Without Content-Length (chunked), the limit is enforced while reading.
        var chunked = new HttpRequestMessage(HttpMethod.Post, "/payments") { Content = new StreamContent(new NonSeekableStream(System.Text.Encoding.UTF8.GetBytes(big))) };
        chunked.Content.Headers.ContentType = new("application/json");
        chunked.Headers.TryAddWithoutValidation("Idempotency-Key", "k2");
        chunked.Headers.Authorization = new("Test", TestApp.DefaultUser);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, (await app.SendAsync(chunked)).StatusCode);
        Assert.Equal(0, app.CallsTo("payments"));
        Assert.Equal(0, ((InMemoryIdempotencyStore)app.Store).Count);

        Assert.Equal(HttpStatusCode.Created, (await app.PostAsync("/payments", "k", "{\"amount\":1}")).StatusCode);
    }

    [Fact]
    public async Task Row16_ResponseOverStoredLimit_CompletedReplayHasStatusAndHeadersButNoBody_NeverRunsTwice()
    {
        await using var app = await TestApp.StartAsync(o => o.MaxResponseBodySize = 10_000);
        var first = await app.PostAsync("/big/50000", "k", json: null);
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(50_000, (await first.Content.ReadAsByteArrayAsync()).Length);

        var retry = await app.PostAsync("/big/50000", "k", json: null);
        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.Equal("true", retry.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal("true", retry.Headers.GetValues("Idempotent-Body-Omitted").Single());
        Assert.Equal("/big/1", retry.Headers.Location!.OriginalString);
        Assert.Empty(await retry.Content.ReadAsByteArrayAsync());
        Assert.Equal(1, app.CallsTo("big"));
        Assert.Contains(app.Logs.Entries, e => e.Id.Id == IdempotencyEventIds.ResponseTooLarge);
    }

    [Fact]
    public async Task Row16_ResponseJustUnderLimit_ReplayedExactly()
    {
        await using var app = await TestApp.StartAsync(o => o.MaxResponseBodySize = 50_000);
        var first = await app.PostAsync("/big/50000", "k", json: null);
        var retry = await app.PostAsync("/big/50000", "k", json: null);
        Assert.Equal(await first.Content.ReadAsByteArrayAsync(), await retry.Content.ReadAsByteArrayAsync());
        Assert.False(retry.Headers.Contains("Idempotent-Body-Omitted"));
    }

    [Fact]
    public async Task Row17_CompletionWriteFails_RecordNotReleasedAndErrorLogged()
    {
        var faulty = new FaultyStore(new InMemoryIdempotencyStore()) { FailComplete = true };
        await using var app = await TestApp.StartAsync(o => o.CompletionRetryDelay = TimeSpan.FromMilliseconds(1), store: _ => faulty, realClock: true);
        var first = await app.PostAsync("/payments", "k");
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(4, faulty.CompleteAttempts); // the first try and 3 retries
        Assert.Contains(app.Logs.Entries, e => e.Id.Id == IdempotencyEventIds.CompletionFailed && e.Level == Microsoft.Extensions.Logging.LogLevel.Error);

        // Not released: a retry within the lease is refused rather than charged again.
        var retry = await app.PostAsync("/payments", "k");
        Assert.Equal(HttpStatusCode.Conflict, retry.StatusCode);
        Assert.Equal(1, app.CallsTo("payments"));
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        for (var i = 0; i < 3000 && !condition(); i++)
        {
            await Task.Delay(10);
        }

        Assert.True(condition());
    }
}
