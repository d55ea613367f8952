using System.Diagnostics.Metrics;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Oncely.AspNetCore.Tests;

/// <summary>
/// The operator API on the in-memory store: what it refuses and why, the anonymous scope, ages, logging and counting of
/// releases, a failing store, and the start-up checks. (The behaviour every store shares is in OperatorApiSpecification.)
/// </summary>
public sealed class OperatorApiTests
{
    private const string Admin = "/admin/idempotency";
    private const string Operator = "ops";
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    private static async Task<(PipelineApp App, FakeTimeProvider Clock)> StartAsync(Func<IServiceProvider, IIdempotencyStore>? store = null, Action<WebApplication>? endpoints = null, Action<IdempotencyAdminOptions>? admin = null)
    {
        var clock = new FakeTimeProvider(Now);
        var app = await PipelineApp.StartAsync(
            pipeline: (web, self) =>
            {
                web.UseAuthentication();
                web.UseAuthorization();
                web.UseIdempotency();
                web.MapPost("/payments", () => Results.Created("/payments/1", new { call = self.Count("payments") })).RequireIdempotencyKey();
                web.MapPost("/refunds", () => Results.Created("/refunds/1", new { call = self.Count("refunds") })).RequireIdempotencyKey();
                web.MapPost("/contact", () => Results.Ok(new { call = self.Count("contact") })).RequireIdempotencyKey().AllowAnonymousIdempotency();
                endpoints?.Invoke(web);
                web.MapIdempotencyAdmin(Admin, admin).RequireAuthorization("operator");
            },
            services: s =>
            {
                s.AddSingleton<TimeProvider>(clock);
                s.AddAuthorizationBuilder().AddPolicy("operator", p => p.RequireUserName(Operator));
                if (store is not null)
                {
                    s.AddIdempotency().UseStore(store);
                }
            });
        return (app, clock);
    }

    private static Task<HttpResponseMessage> GetAsync(PipelineApp app, string pathAndQuery, string user = Operator)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, pathAndQuery);
        request.Headers.Authorization = PipelineApp.Auth(user);
        return app.Client.SendAsync(request);
    }

    private static Task<HttpResponseMessage> ReleaseAsync(PipelineApp app, string body, string user = Operator)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, $"{Admin}/records/release") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = PipelineApp.Auth(user);
        return app.Client.SendAsync(request);
    }

    private static async Task<JsonElement> RecordsOf(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("records").Clone();
    }

    private static async Task<string> ProblemDetailAsync(HttpResponseMessage response, HttpStatusCode status, string type)
    {
        Assert.Equal(status, response.StatusCode);
        var problem = await DecisionTableTests.ProblemOf(response, type);
        return problem.GetProperty("detail").GetString()!;
    }

    [Theory]
    [InlineData("limit=0", "'limit' is '0'")]
    [InlineData("limit=501", "from 1 to 500")]
    [InlineData("limit=ten", "'limit' is 'ten'")]
    [InlineData("state=Done", "use InProgress or Completed")]
    [InlineData("olderThan=5m", "PT15M")]
    [InlineData("olderThan=-PT5M", "'olderThan' is '-PT5M'")]
    [InlineData("createdBefore=yesterday", "2026-11-24T12:00:00Z")]
    [InlineData("continuation=garbage", "continuation")]
    [InlineData("continuation=", "'continuation' is empty")]
    [InlineData("operation=", "'operation' is empty")]
    [InlineData("tenant=a&tenant=b", "Give 'tenant' at most once")]
    [InlineData("key=abc", "needs the 'tenant' too")]
    [InlineData("tenant=t&key=a+b", "encode it as %2B")]
    [InlineData("tenant=t&key=k&continuation=x", "leave 'continuation' out")]
    public async Task ListRecords_MalformedQuery_400ProblemSayingWhatToSend(string query, string detail)
    {
        var (app, _) = await StartAsync();
        await using var _ = app;

        var response = await GetAsync(app, $"{Admin}/records?{query}");

        Assert.Contains(detail, await ProblemDetailAsync(response, HttpStatusCode.BadRequest, "idempotency-admin-invalid-request"), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("limit=0")]
    [InlineData("continuation=W10")]
    [InlineData("key=a+b")]
    public async Task ListAudit_MalformedQuery_400Problem(string query)
    {
        var (app, _) = await StartAsync();
        await using var _ = app;

        await ProblemDetailAsync(await GetAsync(app, $"{Admin}/audit?{query}"), HttpStatusCode.BadRequest, "idempotency-admin-invalid-request");
    }

    [Theory]
    [InlineData("", "Send a JSON body")]
    [InlineData("null", "Send a JSON body")]
    [InlineData("not json", "not the JSON object")]
    [InlineData("[]", "not the JSON object")]
    [InlineData("{}", "'tenant' is required")]
    [InlineData("{\"tenant\":\"t\",\"key\":\"k\",\"fencingToken\":1}", "'operation' is required")]
    [InlineData("{\"tenant\":\"t\",\"operation\":\"POST /payments\",\"fencingToken\":1}", "'key' is required")]
    [InlineData("{\"tenant\":\"t\",\"operation\":\"POST /payments\",\"key\":\"k\"}", "'fencingToken' is required")]
    [InlineData("{\"tenant\":\"t\",\"operation\":\"POST /payments\",\"key\":\"k\",\"fencingToken\":\"12\"}", "not the JSON object")]
    [InlineData("{\"tenant\":\"t\",\"operation\":\"POST /payments\",\"key\":\"k\",\"token\":12}", "token")]
    public async Task Release_MalformedBody_400ProblemAndNothingReleased(string body, string detail)
    {
        var (app, _) = await StartAsync();
        await using var _ = app;

        var response = await ReleaseAsync(app, body);

        Assert.Contains(detail, await ProblemDetailAsync(response, HttpStatusCode.BadRequest, "idempotency-admin-invalid-request"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Release_BodyOverTheLimit_400Problem()
    {
        var (app, _) = await StartAsync();
        await using var _ = app;

        var response = await ReleaseAsync(app, $"{{\"tenant\":\"{new string('t', 20_000)}\"}}");

        Assert.Contains("at most 16384 bytes", await ProblemDetailAsync(response, HttpStatusCode.BadRequest, "idempotency-admin-invalid-request"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Release_LoggedAsAWarningWithTheOperatorAndCountedByOutcome()
    {
        var (app, _) = await StartAsync();
        await using var _ = app;
        var id = new IdempotencyRecordId(TestApp.DefaultUser, "POST /payments", "stuck-key");
        var held = await app.Store.TryReserveAsync(id, new string('a', 64), TimeSpan.FromMinutes(5), TimeSpan.FromHours(1), default);
        var outcomes = new List<string>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == IdempotencyDiagnostics.MeterName && instrument.Name == "oncely.admin.releases")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            lock (outcomes)
            {
                outcomes.Add((string)tags.ToArray().Single(t => t.Key == "oncely.release.outcome").Value!);
            }
        });
        listener.Start();
        var body = JsonSerializer.Serialize(new { tenant = id.Tenant, operation = id.Operation, key = id.Key, fencingToken = held.Record.FencingToken });

        var released = await ReleaseAsync(app, body);
        var again = await ReleaseAsync(app, body);

        Assert.Equal(HttpStatusCode.NoContent, released.StatusCode);
        await ProblemDetailAsync(again, HttpStatusCode.NotFound, "idempotency-record-not-found");
        Assert.Null(await app.Store.GetAsync(id, default));
        var warning = Assert.Single(app.Logs.Entries, e => e.Id.Id == IdempotencyEventIds.RecordReleasedByOperator);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("Operator ops released", warning.Message, StringComparison.Ordinal);
        Assert.Contains("stuck-key", warning.Message, StringComparison.Ordinal);
        var refused = Assert.Single(app.Logs.Entries, e => e.Id.Id == IdempotencyEventIds.OperatorReleaseRefused);
        Assert.Equal(LogLevel.Information, refused.Level);
        Assert.Equal(["released", "not_found"], outcomes);
    }

    [Fact]
    public async Task AnonymousScope_ListedLookedUpAndReleasedWithTheEmptyTenant()
    {
        var (app, _) = await StartAsync();
        await using var _ = app;
        await app.Client.SendAsync(PipelineApp.Post("/contact", "form-1", user: null));
        await app.Client.SendAsync(PipelineApp.Post("/payments", "form-1"));
        var anonymousId = new IdempotencyRecordId(IdempotencyRecordId.AnonymousTenant, "POST /refunds", "stuck");
        var held = await app.Store.TryReserveAsync(anonymousId, new string('b', 64), TimeSpan.FromMinutes(5), TimeSpan.FromHours(1), default);

        var anonymous = await RecordsOf(await GetAsync(app, $"{Admin}/records?tenant="));
        var lookedUp = await RecordsOf(await GetAsync(app, $"{Admin}/records?tenant=&key=form-1"));
        var all = await RecordsOf(await GetAsync(app, $"{Admin}/records"));
        var released = await ReleaseAsync(app, JsonSerializer.Serialize(new { tenant = "", operation = "POST /refunds", key = "stuck", fencingToken = held.Record.FencingToken }));

        Assert.Equal(["POST /refunds", "POST /contact"], anonymous.EnumerateArray().Select(r => r.GetProperty("operation").GetString()));
        Assert.All(anonymous.EnumerateArray(), r => Assert.Equal(string.Empty, r.GetProperty("tenant").GetString()));
        Assert.Equal("POST /contact", Assert.Single(lookedUp.EnumerateArray()).GetProperty("operation").GetString());
        Assert.Equal(3, all.GetArrayLength());
        Assert.Equal(HttpStatusCode.NoContent, released.StatusCode);
        Assert.Null(await app.Store.GetAsync(anonymousId, default));
    }

    [Fact]
    public async Task LookupByKey_EveryOperationOfThatTenantNewestFirst_FilteredByStateAndOperation()
    {
        var (app, clock) = await StartAsync();
        await using var _ = app;
        await app.Client.SendAsync(PipelineApp.Post("/payments", "shared"));
        clock.Advance(TimeSpan.FromSeconds(1));
        await app.Client.SendAsync(PipelineApp.Post("/refunds", "shared"));
        await app.Client.SendAsync(PipelineApp.Post("/payments", "shared", user: "someone-else"));

        var both = await RecordsOf(await GetAsync(app, $"{Admin}/records?tenant={TestApp.DefaultUser}&key=shared"));
        var payments = await RecordsOf(await GetAsync(app, $"{Admin}/records?tenant={TestApp.DefaultUser}&key=shared&operation={Uri.EscapeDataString("POST /payments")}"));
        var inProgress = await RecordsOf(await GetAsync(app, $"{Admin}/records?tenant={TestApp.DefaultUser}&key=shared&state=InProgress"));

        Assert.Equal(["POST /refunds", "POST /payments"], both.EnumerateArray().Select(r => r.GetProperty("operation").GetString()));
        Assert.Equal("POST /payments", Assert.Single(payments.EnumerateArray()).GetProperty("operation").GetString());
        Assert.Equal(0, inProgress.GetArrayLength());
    }

    [Fact]
    public async Task OlderThanAndCreatedBefore_OnlyRecordsCreatedBeforeThatAge()
    {
        var (app, clock) = await StartAsync();
        await using var _ = app;
        await app.Client.SendAsync(PipelineApp.Post("/payments", "old"));
        clock.Advance(TimeSpan.FromMinutes(10));
        await app.Client.SendAsync(PipelineApp.Post("/payments", "new"));

        foreach (var query in new[] { "olderThan=PT5M", "olderThan=00:05:00", "createdBefore=2026-11-24T12:01:00Z", "createdBefore=2026-11-24T13:01:00%2B01:00", "olderThan=PT1M&createdBefore=2026-11-24T12:01:00Z" })
        {
            var records = await RecordsOf(await GetAsync(app, $"{Admin}/records?{query}"));
            Assert.Equal("old", Assert.Single(records.EnumerateArray()).GetProperty("key").GetString());
        }

        Assert.Equal(2, (await RecordsOf(await GetAsync(app, $"{Admin}/records?olderThan=PT0S"))).GetArrayLength());
        Assert.Equal(0, (await RecordsOf(await GetAsync(app, $"{Admin}/records?olderThan=PT11M"))).GetArrayLength());
        Assert.Equal("2026-11-24T12:00:00Z", (await RecordsOf(await GetAsync(app, $"{Admin}/records?key=old&tenant={TestApp.DefaultUser}")))[0].GetProperty("createdAt").GetString());
    }

    [Fact]
    public async Task StoreFailing_503ProblemWithRetryAfterAndAnErrorLogged()
    {
        var (app, _) = await StartAsync(store: _ => new UnreachableAdministrationStore());
        await using var _ = app;

        var list = await GetAsync(app, $"{Admin}/records");
        var audit = await GetAsync(app, $"{Admin}/audit");
        var release = await ReleaseAsync(app, "{\"tenant\":\"t\",\"operation\":\"POST /payments\",\"key\":\"k\",\"fencingToken\":1}");
        var detail = await GetAsync(app, $"{Admin}/records/detail?tenant=t&operation=POST%20%2Fpayments&key=k");

        foreach (var response in new[] { list, audit, release, detail })
        {
            await ProblemDetailAsync(response, HttpStatusCode.ServiceUnavailable, "idempotency-store-unavailable");
            Assert.Equal("1", response.Headers.RetryAfter?.ToString());
        }

        Assert.Equal(4, app.Logs.Entries.Count(e => e.Id.Id == IdempotencyEventIds.AdministrationStoreUnavailable && e.Level == LogLevel.Error));
    }

    [Fact]
    public async Task OperatorApi_IsNotIdempotent_SameReleaseTwiceWithAKeyIsNotReplayed()
    {
        var (app, _) = await StartAsync();
        await using var _ = app;
        var id = new IdempotencyRecordId(TestApp.DefaultUser, "POST /payments", "k");
        var held = await app.Store.TryReserveAsync(id, new string('a', 64), TimeSpan.FromMinutes(5), TimeSpan.FromHours(1), default);
        var body = JsonSerializer.Serialize(new { tenant = id.Tenant, operation = id.Operation, key = id.Key, fencingToken = held.Record.FencingToken });

        HttpRequestMessage Release()
        {
            var request = new HttpRequestMessage(HttpMethod.Post, $"{Admin}/records/release") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            request.Headers.Authorization = PipelineApp.Auth(Operator);
            request.Headers.Add("Idempotency-Key", "operator-key");
            return request;
        }

        var first = await app.Client.SendAsync(Release());
        var second = await app.Client.SendAsync(Release());

        Assert.Equal(HttpStatusCode.NoContent, first.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, second.StatusCode);
        Assert.False(second.Headers.Contains("Idempotent-Replayed"));
        Assert.DoesNotContain(app.Store is IIdempotencyStoreAdministration admin ? (await admin.ListRecordsAsync(new(), default)).Records : [], r => r.Id.Key == "operator-key");
    }

    [Fact]
    public async Task Start_OperatorApiWithoutAuthorization_FailsSayingHowToSecureIt_AllowAnonymousStarts()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => PipelineApp.StartAsync(pipeline: (web, _) =>
        {
            web.UseIdempotency();
            web.MapIdempotencyAdmin(Admin);
        }));
        Assert.Contains("without authorization", error.Message, StringComparison.Ordinal);
        Assert.Contains("RequireAuthorization", error.Message, StringComparison.Ordinal);

        await using var open = await PipelineApp.StartAsync(pipeline: (web, _) =>
        {
            web.UseIdempotency();
            web.MapIdempotencyAdmin(Admin).AllowAnonymous();
        });
        Assert.Equal(HttpStatusCode.OK, (await open.Client.GetAsync($"{Admin}/records")).StatusCode);
    }

    [Fact]
    public async Task Start_OperatorApiInsideAnIdempotentGroup_Fails()
    {
        var error = await Assert.ThrowsAnyAsync<InvalidOperationException>(() => PipelineApp.StartAsync(pipeline: (web, _) =>
        {
            web.UseIdempotency();
            var api = web.MapGroup("/api").RequireIdempotencyKey();
            api.MapIdempotencyAdmin(Admin).AllowAnonymous();
        }));

        Assert.Contains("must not be idempotent", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StoreWithoutTheCapability_WarnsAtStartAndAnswers501NamingTheStore_IdempotencyStillWorks()
    {
        var (app, _) = await StartAsync(store: _ => new FaultyStore(new InMemoryIdempotencyStore()));
        await using var _ = app;

        var warning = Assert.Single(app.Logs.Entries, e => e.Id.Id == IdempotencyEventIds.AdministrationNotSupported);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("FaultyStore", warning.Message, StringComparison.Ordinal);
        foreach (var response in new[] { await GetAsync(app, $"{Admin}/records"), await GetAsync(app, $"{Admin}/audit"), await ReleaseAsync(app, "{}"), await GetAsync(app, $"{Admin}/records/detail?tenant=t&operation=POST%20%2Fpayments&key=k") })
        {
            Assert.Contains("FaultyStore", await ProblemDetailAsync(response, HttpStatusCode.NotImplemented, "idempotency-admin-not-supported"), StringComparison.Ordinal);
        }

        await app.Client.SendAsync(PipelineApp.Post("/payments", "k"));
        Assert.True((await app.Client.SendAsync(PipelineApp.Post("/payments", "k"))).Headers.Contains("Idempotent-Replayed"));
    }

    [Fact]
    public async Task RecordDetail_ShowStoredBodies_TextShownAndLoggedWithoutTheBody_BinaryOnlyItsLength()
    {
        var (app, _) = await StartAsync(
            endpoints: web => web.MapPost("/files", () => Results.Bytes(new byte[] { 0xff, 0xfe, 0x00, 0x80 }, "application/octet-stream")).RequireIdempotencyKey(),
            admin: o => o.ShowStoredBodies = true);
        await using var _ = app;
        await app.Client.SendAsync(PipelineApp.Post("/payments", "text-1"));
        await app.Client.SendAsync(PipelineApp.Post("/files", "binary-1"));
        var records = JsonDocument.Parse(await (await GetAsync(app, $"{Admin}/records")).Content.ReadAsStringAsync()).RootElement.GetProperty("records");
        var tenant = Uri.EscapeDataString(records[0].GetProperty("tenant").GetString()!);

        var text = JsonDocument.Parse(await (await GetAsync(app, $"{Admin}/records/detail?tenant={tenant}&operation=POST%20%2Fpayments&key=text-1")).Content.ReadAsStringAsync()).RootElement.GetProperty("answer");
        var binary = JsonDocument.Parse(await (await GetAsync(app, $"{Admin}/records/detail?tenant={tenant}&operation=POST%20%2Ffiles&key=binary-1")).Content.ReadAsStringAsync()).RootElement.GetProperty("answer");

        Assert.Equal("shown", text.GetProperty("bodyStatus").GetString());
        Assert.Equal("{\"call\":1}", text.GetProperty("body").GetString());
        var shown = Assert.Single(app.Logs.Entries, e => e.Id.Id == IdempotencyEventIds.StoredBodyShownToOperator);
        Assert.Equal(LogLevel.Information, shown.Level);
        Assert.Contains($"Operator {Operator} was shown", shown.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("call", shown.Message, StringComparison.Ordinal);
        Assert.Equal("binary", binary.GetProperty("bodyStatus").GetString());
        Assert.Equal(JsonValueKind.Null, binary.GetProperty("body").ValueKind);
        Assert.Equal(4, binary.GetProperty("bodyLength").GetInt32());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(IdempotencyAdminOptions.MaxStoredBodyDisplayLimit + 1)]
    public async Task MapIdempotencyAdmin_StoredBodyDisplayLimitOutOfRange_ThrowsSayingTheRange(int limit)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Services.AddIdempotency();
        await using var app = builder.Build();

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => app.MapIdempotencyAdmin(Admin, o => o.StoredBodyDisplayLimit = limit));

        Assert.Contains("from 1 to 65536", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MapIdempotencyAdmin_WithoutAddIdempotency_ThrowsSayingWhatToCall()
    {
        var app = WebApplication.CreateSlimBuilder().Build();

        var error = Assert.Throws<InvalidOperationException>(() => app.MapIdempotencyAdmin());

        Assert.Contains("AddIdempotency()", error.Message, StringComparison.Ordinal);
    }

    /// <summary>A store whose every call fails the way an unreachable database does.</summary>
    private sealed class UnreachableAdministrationStore : IIdempotencyStore, IIdempotencyStoreAdministration
    {
        private static IdempotencyStoreUnavailableException Down() => new("connection refused (test)");

        public ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken) => throw Down();

        public ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken) => throw Down();

        public ValueTask<bool> TryReleaseAsync(IdempotencyRecordId id, long fencingToken, CancellationToken cancellationToken) => throw Down();

        public ValueTask<bool> TrySetRecoveryPointAsync(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken) => throw Down();

        public ValueTask<bool> TryRenewLeaseAsync(IdempotencyRecordId id, long fencingToken, TimeSpan lease, CancellationToken cancellationToken) => throw Down();

        public ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken) => throw Down();

        public ValueTask<IdempotencyRecordPage> ListRecordsAsync(IdempotencyRecordQuery query, CancellationToken cancellationToken) => throw Down();

        public ValueTask<IReadOnlyList<IdempotencyRecordSummary>> FindByKeyAsync(string tenant, string key, CancellationToken cancellationToken) => throw Down();

        public ValueTask<KeyReuseAuditPage> ListAuditAsync(KeyReuseAuditQuery query, CancellationToken cancellationToken) => throw Down();
    }
}
