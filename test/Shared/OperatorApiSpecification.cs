using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Claims;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Oncely.AspNetCore;

namespace Oncely.Storage.Specification;

/// <summary>
/// The operator API (<c>MapIdempotencyAdmin</c>) over HTTP, on a real pipeline with a real store: find a stuck key and
/// release it (fenced), page through records, read the audit, and who may call it. Derived per store.
/// </summary>
public abstract class OperatorApiSpecification
{
    protected const string Admin = "/admin/idempotency";
    private const string Problems = "https://oncely.dev/problems/";

    /// <summary>Creates a fresh, empty store (schema initialised) that uses <see cref="Clock"/>.</summary>
    protected abstract ValueTask<IIdempotencyStore> CreateStoreAsync();

    /// <summary>The clock the application (and, where it has one of its own, the store) uses.</summary>
    protected abstract TimeProvider Clock { get; }

    /// <summary>Moves the store's clock forward by at least <paramref name="by"/> (or waits that long).</summary>
    protected abstract Task AdvanceClockAsync(TimeSpan by);

    /// <summary>A lease the tests let run out, and how long to wait past it.</summary>
    protected static readonly TimeSpan ShortLease = TimeSpan.FromSeconds(1);

    protected static readonly TimeSpan PastShortLease = TimeSpan.FromMilliseconds(1600);

    protected sealed class App : IAsyncDisposable
    {
        private readonly WebApplication _app;

        public App(WebApplication app, IIdempotencyStore store)
        {
            _app = app;
            Store = store;
            Client = app.GetTestClient();
        }

        public IIdempotencyStore Store { get; }

        public HttpClient Client { get; }

        public ConcurrentDictionary<string, int> Calls { get; } = new();

        public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int CallsTo(string key) => Calls.TryGetValue(key, out var n) ? n : 0;

        public Task<HttpResponseMessage> PayAsync(string key, long amount = 100, bool block = false, string caller = "tenant-a")
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/payments")
            {
                Content = new StringContent($"{{\"amount\":{amount},\"block\":{(block ? "true" : "false")}}}", Encoding.UTF8, "application/json"),
            };
            request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
            request.Headers.Authorization = new AuthenticationHeaderValue(OperatorApiTestAuth.SchemeName, caller);
            return Client.SendAsync(request);
        }

        public Task<HttpResponseMessage> GetAsync(string pathAndQuery, string? caller = "operator:alice")
        {
            var request = new HttpRequestMessage(HttpMethod.Get, pathAndQuery);
            if (caller is not null)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue(OperatorApiTestAuth.SchemeName, caller);
            }

            return Client.SendAsync(request);
        }

        public Task<HttpResponseMessage> ReleaseAsync(object body, string? caller = "operator:alice")
        {
            var request = new HttpRequestMessage(HttpMethod.Post, $"{Admin}/records/release")
            {
                Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"),
            };
            if (caller is not null)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue(OperatorApiTestAuth.SchemeName, caller);
            }

            return Client.SendAsync(request);
        }

        public Task<HttpResponseMessage> PostAsync(string path, object body, string? caller = "operator:alice")
        {
            var request = new HttpRequestMessage(HttpMethod.Post, path)
            {
                Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"),
            };
            if (caller is not null)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue(OperatorApiTestAuth.SchemeName, caller);
            }

            return Client.SendAsync(request);
        }

        public async ValueTask DisposeAsync()
        {
            Gate.TrySetResult();
            await _app.DisposeAsync();
        }
    }

    protected async Task<App> StartAsync(IIdempotencyStore? store = null, Action<IdempotencyAdminOptions>? admin = null)
    {
        store ??= await CreateStoreAsync();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(Clock);
        builder.Services.AddAuthentication(OperatorApiTestAuth.SchemeName).AddScheme<AuthenticationSchemeOptions, OperatorApiTestAuth>(OperatorApiTestAuth.SchemeName, null);
        builder.Services.AddAuthorizationBuilder().AddPolicy("operator", p => p.RequireRole("operator"));
        builder.Services.AddIdempotency().UseStore(_ => store);
        var web = builder.Build();
        App? app = null;
        web.UseAuthentication();
        web.UseAuthorization();
        web.UseIdempotency();
        web.MapPost("/payments", async (HttpContext context) =>
        {
            using var body = await JsonDocument.ParseAsync(context.Request.Body);
            var key = context.GetIdempotencyExecution()!.Id.Key;
            var call = app!.Calls.AddOrUpdate(key, 1, (_, n) => n + 1);
            if (body.RootElement.GetProperty("block").GetBoolean() && call == 1)
            {
                app.Entered.TrySetResult();
                await app.Gate.Task;
            }

            return Results.Created($"/payments/{key}", new { key, call, amount = body.RootElement.GetProperty("amount").GetInt64() });
        }).RequireIdempotencyKey();
        web.MapIdempotencyAdmin(Admin, admin).RequireAuthorization("operator");
        await web.StartAsync();
        app = new App(web, store);
        return app;
    }

    protected static async Task<JsonElement> JsonOf(HttpResponseMessage response, HttpStatusCode status = HttpStatusCode.OK)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"Expected {(int)status}, got {(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    protected static async Task<JsonElement> ProblemOf(HttpResponseMessage response, HttpStatusCode status, string type)
    {
        var problem = await JsonOf(response, status);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(Problems + type, problem.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("detail").GetString()));
        return problem;
    }

    private static string Q(string value) => Uri.EscapeDataString(value);

    [Fact]
    public async Task StuckKey_FoundListedAndReleased_ARetryRunsAgainAndTheStaleWorkerCannotComplete()
    {
        await using var app = await StartAsync();
        var key = $"stuck+{Guid.NewGuid():N}/1";
        var stuck = app.PayAsync(key, block: true);
        await app.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));

        var listed = await JsonOf(await app.GetAsync($"{Admin}/records?state=InProgress&tenant=tenant-a"));
        var record = Assert.Single(listed.GetProperty("records").EnumerateArray());
        Assert.Equal(key, record.GetProperty("key").GetString());
        Assert.Equal("POST /payments", record.GetProperty("operation").GetString());
        Assert.Equal("InProgress", record.GetProperty("state").GetString());
        var token = record.GetProperty("fencingToken").GetInt64();
        var inProgress = await app.PayAsync(key, block: true);
        Assert.Equal(HttpStatusCode.Conflict, inProgress.StatusCode);

        var released = await app.ReleaseAsync(new { tenant = "tenant-a", operation = "POST /payments", key, fencingToken = token });

        Assert.Equal(HttpStatusCode.NoContent, released.StatusCode);
        var retry = await app.PayAsync(key, block: true);
        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.Equal(2, app.CallsTo(key));
        app.Gate.SetResult();
        Assert.Equal(HttpStatusCode.Created, (await stuck).StatusCode);
        var after = await JsonOf(await app.GetAsync($"{Admin}/records?tenant=tenant-a&key={Q(key)}"));
        var completed = Assert.Single(after.GetProperty("records").EnumerateArray());
        Assert.Equal("Completed", completed.GetProperty("state").GetString());
        Assert.NotEqual(token, completed.GetProperty("fencingToken").GetInt64());
        var replay = await app.PayAsync(key, block: true);
        Assert.Equal("true", Assert.Single(replay.Headers.GetValues("Idempotent-Replayed")));
        Assert.Contains("\"call\":2", await replay.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Release_TokenTakenOverSinceListed_409WithTheCurrentTokenAndRecordUnchanged()
    {
        await using var app = await StartAsync();
        var id = new IdempotencyRecordId("tenant-a", "POST /payments", Guid.NewGuid().ToString());
        var first = await app.Store.TryReserveAsync(id, new string('a', 64), ShortLease, TimeSpan.FromHours(1), default);
        await AdvanceClockAsync(PastShortLease);
        var takeOver = await app.Store.TryReserveAsync(id, new string('a', 64), TimeSpan.FromMinutes(5), TimeSpan.FromHours(1), default);
        Assert.Equal(ReservationOutcome.TakenOver, takeOver.Outcome);

        var refused = await app.ReleaseAsync(new { tenant = id.Tenant, operation = id.Operation, key = id.Key, fencingToken = first.Record.FencingToken });

        var problem = await ProblemOf(refused, HttpStatusCode.Conflict, "idempotency-fencing-token-stale");
        Assert.Equal(takeOver.Record.FencingToken, problem.GetProperty("currentFencingToken").GetInt64());
        var now = await app.Store.GetAsync(id, default);
        Assert.NotNull(now);
        Assert.Equal(takeOver.Record.FencingToken, now.FencingToken);
        Assert.Equal(IdempotencyRecordState.InProgress, now.State);
        Assert.Equal(takeOver.Record.LeaseExpiresAt, now.LeaseExpiresAt);
    }

    [Fact]
    public async Task Release_CompletedRecord409_MissingRecord404_NothingChanged()
    {
        await using var app = await StartAsync();
        var key = Guid.NewGuid().ToString();
        Assert.Equal(HttpStatusCode.Created, (await app.PayAsync(key)).StatusCode);
        var record = (await JsonOf(await app.GetAsync($"{Admin}/records?tenant=tenant-a&key={Q(key)}"))).GetProperty("records")[0];
        var token = record.GetProperty("fencingToken").GetInt64();

        var completed = await app.ReleaseAsync(new { tenant = "tenant-a", operation = "POST /payments", key, fencingToken = token });
        var missing = await app.ReleaseAsync(new { tenant = "tenant-a", operation = "POST /payments", key = key + "-absent", fencingToken = token });
        var otherTenant = await app.ReleaseAsync(new { tenant = "tenant-b", operation = "POST /payments", key, fencingToken = token });

        await ProblemOf(completed, HttpStatusCode.Conflict, "idempotency-record-completed");
        await ProblemOf(missing, HttpStatusCode.NotFound, "idempotency-record-not-found");
        await ProblemOf(otherTenant, HttpStatusCode.NotFound, "idempotency-record-not-found");
        var replay = await app.PayAsync(key);
        Assert.Equal("true", Assert.Single(replay.Headers.GetValues("Idempotent-Replayed")));
        Assert.Equal(1, app.CallsTo(key));
    }

    [Fact]
    public async Task ListRecords_PagedFilteredAndShownInUtcWithoutBodies()
    {
        await using var app = await StartAsync();
        var keys = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            keys.Add($"page-{i}-{Guid.NewGuid():N}");
            Assert.Equal(HttpStatusCode.Created, (await app.PayAsync(keys[^1], amount: 100 + i)).StatusCode);
            await AdvanceClockAsync(TimeSpan.FromMilliseconds(5));
        }

        Assert.Equal(HttpStatusCode.Created, (await app.PayAsync("other-tenant", caller: "tenant-b")).StatusCode);

        var first = await JsonOf(await app.GetAsync($"{Admin}/records?tenant=tenant-a&state=Completed&operation={Q("POST /payments")}&limit=2"));
        var continuation = first.GetProperty("continuation").GetString();
        var second = await JsonOf(await app.GetAsync($"{Admin}/records?tenant=tenant-a&state=Completed&operation={Q("POST /payments")}&limit=2&continuation={continuation}"));
        var all = await JsonOf(await app.GetAsync($"{Admin}/records"));

        var paged = first.GetProperty("records").EnumerateArray().Concat(second.GetProperty("records").EnumerateArray()).ToList();
        Assert.Equal([keys[2], keys[1], keys[0]], paged.Select(r => r.GetProperty("key").GetString()));
        Assert.Equal(JsonValueKind.Null, second.GetProperty("continuation").ValueKind);
        Assert.Equal(4, all.GetProperty("records").GetArrayLength());
        foreach (var record in paged)
        {
            Assert.Equal(201, record.GetProperty("statusCode").GetInt32());
            Assert.Equal("tenant-a", record.GetProperty("tenant").GetString());
            Assert.Equal(64, record.GetProperty("fingerprint").GetString()!.Length);
            foreach (var time in new[] { "createdAt", "leaseExpiresAt", "expiresAt" })
            {
                var text = record.GetProperty(time).GetString()!;
                Assert.EndsWith("Z", text, StringComparison.Ordinal);
                Assert.Equal(DateTimeKind.Utc, DateTime.Parse(text, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.RoundtripKind).Kind);
            }

            Assert.Equal(
                ["attempts", "createdAt", "expiresAt", "fencingToken", "fingerprint", "key", "leaseExpiresAt", "operation", "recoveryPoint", "state", "statusCode", "tenant"],
                record.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        }
    }

    /// <summary>
    /// A key with a card number in it (Luhn-valid test PAN): the answer's Location and body quote it. A letter follows the
    /// separator, so that no digit of the random part can join the card number.
    /// </summary>
    private static string CardKey() => $"card-4111111111111111-x{Guid.NewGuid():N}";

    private static string Detail(string tenant, string operation, string key) => $"{Admin}/records/detail?tenant={Q(tenant)}&operation={Q(operation)}&key={Q(key)}";

    [Fact]
    public async Task RecordDetail_Completed_StatusAndHeadersInOrderWithCardNumbersMasked_BodyHiddenByDefault()
    {
        await using var app = await StartAsync();
        var key = CardKey();
        using var first = await app.PayAsync(key, amount: 4242);
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);

        using var response = await app.GetAsync(Detail("tenant-a", "POST /payments", key));

        var detail = await JsonOf(response);
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
        var record = detail.GetProperty("record");
        Assert.Equal("Completed", record.GetProperty("state").GetString());
        Assert.Equal(201, record.GetProperty("statusCode").GetInt32());
        Assert.Equal(1, record.GetProperty("attempts").GetInt32());
        Assert.Equal(64, record.GetProperty("fingerprint").GetString()!.Length);
        var answer = detail.GetProperty("answer");
        Assert.Equal(201, answer.GetProperty("statusCode").GetInt32());
        Assert.False(answer.GetProperty("protected").GetBoolean());
        Assert.True(answer.GetProperty("readable").GetBoolean());
        var headers = answer.GetProperty("headers").EnumerateArray().Select(h => (h.GetProperty("name").GetString()!, h.GetProperty("value").GetString()!)).ToList();
        var replay = await app.PayAsync(key, amount: 4242);
        var replayed = replay.Headers.Concat(replay.Content.Headers).Select(h => h.Key).Where(n => headers.Any(h => h.Item1.Equals(n, StringComparison.OrdinalIgnoreCase))).ToList();
        Assert.Contains(("Location", $"/payments/card-************1111-{key[22..]}"), headers);
        Assert.Contains(headers, h => h.Item1.Equals("Content-Type", StringComparison.OrdinalIgnoreCase) && h.Item2.StartsWith("application/json", StringComparison.Ordinal));
        Assert.Equal(headers.Count, replayed.Count);
        // The record's key is shown as listed (operators look keys up by it); what the answer stored is masked.
        Assert.DoesNotContain("4111111111111111", answer.GetRawText(), StringComparison.Ordinal);
        Assert.Equal("hidden", answer.GetProperty("bodyStatus").GetString());
        Assert.Equal(JsonValueKind.Null, answer.GetProperty("body").ValueKind);
        Assert.Equal((await first.Content.ReadAsByteArrayAsync()).Length, answer.GetProperty("bodyLength").GetInt32());
        Assert.False(answer.GetProperty("bodyOmitted").GetBoolean());
        Assert.DoesNotContain("4242", detail.GetRawText(), StringComparison.Ordinal);
        Assert.Equal(1, app.CallsTo(key));
    }

    [Fact]
    public async Task RecordDetail_ShowStoredBodiesOn_BodyShownWithCardNumbersMasked_CutAtTheLimit()
    {
        var key = CardKey();
        await using (var app = await StartAsync(admin: o => o.ShowStoredBodies = true))
        {
            Assert.Equal(HttpStatusCode.Created, (await app.PayAsync(key, amount: 4242)).StatusCode);

            var answer = (await JsonOf(await app.GetAsync(Detail("tenant-a", "POST /payments", key)))).GetProperty("answer");

            Assert.Equal("shown", answer.GetProperty("bodyStatus").GetString());
            var body = answer.GetProperty("body").GetString()!;
            Assert.Contains("\"amount\":4242", body, StringComparison.Ordinal);
            Assert.Contains("card-************1111-", body, StringComparison.Ordinal);
            Assert.DoesNotContain("4111111111111111", body, StringComparison.Ordinal);
            Assert.False(answer.GetProperty("bodyTruncated").GetBoolean());
        }

        await using var capped = await StartAsync(admin: o => (o.ShowStoredBodies, o.StoredBodyDisplayLimit) = (true, 12));
        Assert.Equal(HttpStatusCode.Created, (await capped.PayAsync(key, amount: 4242)).StatusCode);

        var cut = (await JsonOf(await capped.GetAsync(Detail("tenant-a", "POST /payments", key)))).GetProperty("answer");

        Assert.Equal(12, cut.GetProperty("body").GetString()!.Length);
        Assert.True(cut.GetProperty("bodyTruncated").GetBoolean());
        Assert.True(cut.GetProperty("bodyLength").GetInt32() > 12);
    }

    [Fact]
    public async Task RecordDetail_InProgressHasNoAnswer_Missing404_BadQuery400_TenantCaller403_NoCaller401()
    {
        await using var app = await StartAsync();
        var key = $"detail+{Guid.NewGuid():N}";
        var stuck = app.PayAsync(key, block: true);
        await app.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));

        var detail = await JsonOf(await app.GetAsync(Detail("tenant-a", "POST /payments", key)));

        Assert.Equal("InProgress", detail.GetProperty("record").GetProperty("state").GetString());
        Assert.Equal(key, detail.GetProperty("record").GetProperty("key").GetString());
        Assert.Equal(JsonValueKind.Null, detail.GetProperty("answer").ValueKind);
        await ProblemOf(await app.GetAsync(Detail("tenant-a", "POST /payments", key + "-absent")), HttpStatusCode.NotFound, "idempotency-record-not-found");
        await ProblemOf(await app.GetAsync(Detail("tenant-b", "POST /payments", key)), HttpStatusCode.NotFound, "idempotency-record-not-found");
        await ProblemOf(await app.GetAsync(Detail("tenant-a", "POST /refunds", key)), HttpStatusCode.NotFound, "idempotency-record-not-found");
        var noOperation = await ProblemOf(await app.GetAsync($"{Admin}/records/detail?tenant=tenant-a&key={Q(key)}"), HttpStatusCode.BadRequest, "idempotency-admin-invalid-request");
        Assert.Contains("'operation' is required", noOperation.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await ProblemOf(await app.GetAsync($"{Admin}/records/detail?operation={Q("POST /payments")}&key={Q(key)}"), HttpStatusCode.BadRequest, "idempotency-admin-invalid-request");
        await ProblemOf(await app.GetAsync($"{Admin}/records/detail?tenant=tenant-a&operation={Q("POST /payments")}"), HttpStatusCode.BadRequest, "idempotency-admin-invalid-request");
        var plus = await ProblemOf(await app.GetAsync($"{Admin}/records/detail?tenant=tenant-a&operation={Q("POST /payments")}&key={key}"), HttpStatusCode.BadRequest, "idempotency-admin-invalid-request");
        Assert.Contains("%2B", plus.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Forbidden, (await app.GetAsync(Detail("tenant-a", "POST /payments", key), caller: "tenant-a")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await app.GetAsync(Detail("tenant-a", "POST /payments", key), caller: null)).StatusCode);
        app.Gate.SetResult();
        Assert.Equal(HttpStatusCode.Created, (await stuck).StatusCode);
        Assert.Equal(1, app.CallsTo(key));
    }

    [Fact]
    public async Task Audit_KeyReusedOverHttp_ListedWithBothFingerprintsAndTheRedactedPayload()
    {
        await using var app = await StartAsync();
        var key = Guid.NewGuid().ToString();
        Assert.Equal(HttpStatusCode.Created, (await app.PayAsync(key, amount: 100)).StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await app.PayAsync(key, amount: 999)).StatusCode);

        var audit = await JsonOf(await app.GetAsync($"{Admin}/audit?tenant=tenant-a&key={Q(key)}"));

        var entry = Assert.Single(audit.GetProperty("entries").EnumerateArray());
        Assert.Equal("POST /payments", entry.GetProperty("operation").GetString());
        Assert.Equal(key, entry.GetProperty("key").GetString());
        Assert.NotEqual(entry.GetProperty("storedFingerprint").GetString(), entry.GetProperty("attemptedFingerprint").GetString());
        Assert.Contains("999", entry.GetProperty("payload").GetString(), StringComparison.Ordinal);
        Assert.EndsWith("Z", entry.GetProperty("occurredAt").GetString(), StringComparison.Ordinal);
        Assert.Empty((await JsonOf(await app.GetAsync($"{Admin}/audit?tenant=tenant-b"))).GetProperty("entries").EnumerateArray());
    }

    [Fact]
    public async Task OperatorApi_TenantCaller403_NoCaller401_NothingReleased()
    {
        await using var app = await StartAsync();
        var key = Guid.NewGuid().ToString();
        var stuck = app.PayAsync(key, block: true);
        await app.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var token = (await app.Store.GetAsync(new("tenant-a", "POST /payments", key), default))!.FencingToken;

        Assert.Equal(HttpStatusCode.Forbidden, (await app.GetAsync($"{Admin}/records", caller: "tenant-a")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await app.GetAsync($"{Admin}/audit", caller: null)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await app.ReleaseAsync(new { tenant = "tenant-a", operation = "POST /payments", key, fencingToken = token }, caller: "tenant-a")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await app.ReleaseAsync(new { tenant = "tenant-a", operation = "POST /payments", key, fencingToken = token }, caller: null)).StatusCode);

        var record = await app.Store.GetAsync(new("tenant-a", "POST /payments", key), default);
        Assert.Equal(token, record!.FencingToken);
        Assert.Equal(IdempotencyRecordState.InProgress, record.State);
        app.Gate.SetResult();
        Assert.Equal(HttpStatusCode.Created, (await stuck).StatusCode);
    }

    [Fact]
    public async Task EraseKey_OverHttp_200WithCounts_AuditedWithTheOperator_ARetryRunsAgain()
    {
        await using var app = await StartAsync();
        var key = $"erase+{Guid.NewGuid():N}";
        Assert.Equal(HttpStatusCode.Created, (await app.PayAsync(key, amount: 100)).StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await app.PayAsync(key, amount: 999)).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await app.PayAsync(key, caller: "tenant-b")).StatusCode);

        var erased = await JsonOf(await app.PostAsync($"{Admin}/records/erase-key", new { tenant = "tenant-a", key }));

        Assert.Equal("tenant-a", erased.GetProperty("tenant").GetString());
        Assert.Equal(key, erased.GetProperty("key").GetString());
        Assert.Equal(1, erased.GetProperty("recordsErased").GetInt32());
        Assert.Equal(1, erased.GetProperty("auditEntriesErased").GetInt32());
        Assert.Empty(erased.GetProperty("inProgress").EnumerateArray());
        var again = await app.PayAsync(key, amount: 999);
        Assert.Equal(HttpStatusCode.Created, again.StatusCode);
        Assert.False(again.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(3, app.CallsTo(key));
        var replayB = await app.PayAsync(key, caller: "tenant-b");
        Assert.Equal("true", Assert.Single(replayB.Headers.GetValues("Idempotent-Replayed")));
        var audit = await JsonOf(await app.GetAsync($"{Admin}/audit?tenant=tenant-a&operation={Q(IdempotencyEraser.AuditOperation)}"));
        var entry = Assert.Single(audit.GetProperty("entries").EnumerateArray());
        Assert.Equal(key, entry.GetProperty("key").GetString());
        var payload = entry.GetProperty("payload").GetString()!;
        Assert.Contains("\"requestedBy\":\"alice\"", payload, StringComparison.Ordinal);
        Assert.DoesNotContain("999", payload, StringComparison.Ordinal);
        Assert.Empty((await JsonOf(await app.GetAsync($"{Admin}/audit?tenant=tenant-a&operation={Q("POST /payments")}"))).GetProperty("entries").EnumerateArray());
    }

    [Fact]
    public async Task EraseTenant_WhileAPaymentRuns_409NamesIt_TheRestErased_ThenAfterItCompletes200()
    {
        await using var app = await StartAsync();
        var done = Guid.NewGuid().ToString();
        var running = Guid.NewGuid().ToString();
        Assert.Equal(HttpStatusCode.Created, (await app.PayAsync(done)).StatusCode);
        var stuck = app.PayAsync(running, block: true);
        await app.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));

        var refused = await app.PostAsync($"{Admin}/records/erase-tenant", new { tenant = "tenant-a" });

        var problem = await ProblemOf(refused, HttpStatusCode.Conflict, "idempotency-erasure-incomplete");
        Assert.Equal(1, problem.GetProperty("recordsErased").GetInt32());
        var kept = Assert.Single(problem.GetProperty("inProgress").EnumerateArray());
        Assert.Equal(running, kept.GetProperty("key").GetString());
        Assert.Equal("InProgress", kept.GetProperty("state").GetString());
        Assert.Equal(HttpStatusCode.Conflict, (await app.PayAsync(running, block: true)).StatusCode);
        app.Gate.SetResult();
        Assert.Equal(HttpStatusCode.Created, (await stuck).StatusCode);
        Assert.Equal(1, app.CallsTo(running));

        var erased = await JsonOf(await app.PostAsync($"{Admin}/records/erase-tenant", new { tenant = "tenant-a" }));

        Assert.Equal(1, erased.GetProperty("recordsErased").GetInt32());
        Assert.Equal(JsonValueKind.Null, erased.GetProperty("key").ValueKind);
        Assert.Empty((await JsonOf(await app.GetAsync($"{Admin}/records?tenant=tenant-a"))).GetProperty("records").EnumerateArray());
    }

    [Fact]
    public async Task Erase_NothingHeld404_BadBodies400_TenantCaller403_NoCaller401()
    {
        await using var app = await StartAsync();
        var key = Guid.NewGuid().ToString();
        Assert.Equal(HttpStatusCode.Created, (await app.PayAsync(key)).StatusCode);

        await ProblemOf(await app.PostAsync($"{Admin}/records/erase-tenant", new { tenant = "nobody" }), HttpStatusCode.NotFound, "idempotency-erasure-nothing-found");
        await ProblemOf(await app.PostAsync($"{Admin}/records/erase-key", new { tenant = "tenant-a", key = "absent" }), HttpStatusCode.NotFound, "idempotency-erasure-nothing-found");
        var noKey = await ProblemOf(await app.PostAsync($"{Admin}/records/erase-key", new { tenant = "tenant-a" }), HttpStatusCode.BadRequest, "idempotency-admin-invalid-request");
        Assert.Contains("'key' is required", noKey.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await ProblemOf(await app.PostAsync($"{Admin}/records/erase-tenant", new { tenant = "tenant-a", key }), HttpStatusCode.BadRequest, "idempotency-admin-invalid-request");
        await ProblemOf(await app.PostAsync($"{Admin}/records/erase-tenant", new { }), HttpStatusCode.BadRequest, "idempotency-admin-invalid-request");
        await ProblemOf(await app.PostAsync($"{Admin}/records/erase-tenant", new { tenant = "tenant-a", everything = true }), HttpStatusCode.BadRequest, "idempotency-admin-invalid-request");
        Assert.Equal(HttpStatusCode.Forbidden, (await app.PostAsync($"{Admin}/records/erase-tenant", new { tenant = "tenant-a" }, caller: "tenant-a")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await app.PostAsync($"{Admin}/records/erase-key", new { tenant = "tenant-a", key }, caller: "tenant-a")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await app.PostAsync($"{Admin}/records/erase-key", new { tenant = "tenant-a", key }, caller: null)).StatusCode);

        var replay = await app.PayAsync(key);
        Assert.Equal("true", Assert.Single(replay.Headers.GetValues("Idempotent-Replayed")));
        Assert.Equal(1, app.CallsTo(key));
    }
}

/// <summary>
/// <c>Authorization: Test &lt;name&gt;</c>: a tenant principal (NameIdentifier = name), or, for <c>operator:&lt;name&gt;</c>,
/// an operator (Name = name, role <c>operator</c>, no tenant).
/// </summary>
public sealed class OperatorApiTestAuth(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "Test";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization.ToString();
        if (!header.StartsWith(SchemeName + " ", StringComparison.Ordinal))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        var name = header[(SchemeName.Length + 1)..];
        Claim[] claims = name.StartsWith("operator:", StringComparison.Ordinal)
            ? [new Claim(ClaimTypes.Name, name["operator:".Length..]), new Claim(ClaimTypes.Role, "operator")]
            : [new Claim(ClaimTypes.NameIdentifier, name)];
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName)), SchemeName)));
    }
}
