using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Oncely;

namespace Payments.Tests;

/// <summary>
/// The sample's operator API (<c>/admin/idempotency</c>), as its README walks through it: an operator key finds a stuck
/// key and releases it so the client's retry goes through; tenant keys cannot use it, and the operator key cannot move money.
/// </summary>
public sealed class OperatorApiTests
{
    private const string Admin = "/admin/idempotency";

    // A worker that crashed after reserving: the account creation's record, InProgress, with a lease far from over.
    private static async Task<string> StrandAccountCreationAsync(PaymentsHost host, string key, string json)
    {
        var store = host.Services.GetRequiredService<IIdempotencyStore>();
        var fingerprint = RequestFingerprint.Compute(new FingerprintInput("POST", "/accounts") { ContentType = "application/json; charset=utf-8", Body = Encoding.UTF8.GetBytes(json) });
        var held = await store.TryReserveAsync(new IdempotencyRecordId("tenant-a", "POST /accounts", key), fingerprint, TimeSpan.FromMinutes(10), TimeSpan.FromHours(24), default);
        Assert.Equal(ReservationOutcome.Acquired, held.Outcome);
        return fingerprint;
    }

    private static Task<HttpResponseMessage> CreateAccountAsync(HttpClient client, string key, string json)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/accounts") { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        request.Headers.Add("Idempotency-Key", key);
        return client.SendAsync(request);
    }

    [Fact]
    public async Task OperatorKey_FindsAStuckKeyAndReleasesIt_TheClientsRetryThenCreatesTheAccountOnce()
    {
        await using var host = await PaymentsHost.StartAsync();
        using var tenant = host.Client();
        using var ops = host.Client(PaymentsHost.Operator);
        const string Json = "{\"name\":\"alice\",\"currency\":\"EUR\"}";
        await StrandAccountCreationAsync(host, "stuck-alice", Json);

        using var blocked = await CreateAccountAsync(tenant, "stuck-alice", Json);
        var stuck = await ops.GetFromJsonAsync<JsonElement>($"{Admin}/records?state=InProgress&olderThan=PT0S");
        var record = Assert.Single(stuck.GetProperty("records").EnumerateArray());
        using var released = await ops.PostAsJsonAsync($"{Admin}/records/release", new
        {
            tenant = record.GetProperty("tenant").GetString(),
            operation = record.GetProperty("operation").GetString(),
            key = record.GetProperty("key").GetString(),
            fencingToken = record.GetProperty("fencingToken").GetInt64(),
        });
        using var retry = await CreateAccountAsync(tenant, "stuck-alice", Json);
        using var replay = await CreateAccountAsync(tenant, "stuck-alice", Json);

        Assert.Equal(HttpStatusCode.Conflict, blocked.StatusCode);
        Assert.Equal("tenant-a", record.GetProperty("tenant").GetString());
        Assert.Equal("POST /accounts", record.GetProperty("operation").GetString());
        Assert.Equal(HttpStatusCode.NoContent, released.StatusCode);
        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.Equal("true", Assert.Single(replay.Headers.GetValues("Idempotent-Replayed")));
        var after = await ops.GetFromJsonAsync<JsonElement>($"{Admin}/records?tenant=tenant-a&key=stuck-alice");
        var completed = Assert.Single(after.GetProperty("records").EnumerateArray());
        Assert.Equal("Completed", completed.GetProperty("state").GetString());
        Assert.Equal(201, completed.GetProperty("statusCode").GetInt32());
        using var again = await ops.PostAsJsonAsync($"{Admin}/records/release", new { tenant = "tenant-a", operation = "POST /accounts", key = "stuck-alice", fencingToken = completed.GetProperty("fencingToken").GetInt64() });
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        Assert.Equal("https://oncely.dev/problems/idempotency-record-completed", (await again.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("type").GetString());
    }

    // Issue 17, item 14: a 403 is the sample's own problem, as its README says, not the framework's generic one.
    [Fact]
    public async Task Forbidden_TenantKeyOnTheOperatorApiOrOperatorKeyOnTheTenantApi_AnsweredWithTheSamplesProblemType()
    {
        await using var host = await PaymentsHost.StartAsync();
        using var tenant = host.Client();
        using var ops = host.Client(PaymentsHost.Operator);

        using var tenantList = await tenant.GetAsync($"{Admin}/records");
        using var tenantAudit = await tenant.GetAsync($"{Admin}/audit");
        using var operatorPays = await PaymentsHost.PostAsync(ops, "/payments", new { from = "acc_1", to = "acc_2", amount = 1, currency = "EUR" });
        using var operatorReads = await ops.GetAsync("/accounts/anything");

        var toOperators = await EndpointTests.AssertProblemAsync(tenantList, HttpStatusCode.Forbidden, "forbidden");
        Assert.Contains("operator API key", toOperators.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await EndpointTests.AssertProblemAsync(tenantAudit, HttpStatusCode.Forbidden, "forbidden");
        var toTenants = await EndpointTests.AssertProblemAsync(operatorPays, HttpStatusCode.Forbidden, "forbidden");
        Assert.Contains("tenant's API key", toTenants.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await EndpointTests.AssertProblemAsync(operatorReads, HttpStatusCode.Forbidden, "forbidden");
        Assert.Equal(0, await host.Ledger.CountPaymentsAsync());
    }

    [Fact]
    public async Task TenantKeysAndNoKey_CannotUseTheOperatorApi_OperatorKeyCannotMoveMoney()
    {
        await using var host = await PaymentsHost.StartAsync();
        await StrandAccountCreationAsync(host, "stuck-bob", "{\"name\":\"bob\",\"currency\":\"EUR\"}");
        var token = (await host.Services.GetRequiredService<IIdempotencyStore>().GetAsync(new("tenant-a", "POST /accounts", "stuck-bob"), default))!.FencingToken;
        using var tenantA = host.Client();
        using var tenantB = host.Client(PaymentsHost.TenantB);
        using var anonymous = host.Client(apiKey: null);
        using var ops = host.Client(PaymentsHost.Operator);
        var release = new { tenant = "tenant-a", operation = "POST /accounts", key = "stuck-bob", fencingToken = token };

        using var tenantList = await tenantA.GetAsync($"{Admin}/records");
        using var tenantRelease = await tenantB.PostAsJsonAsync($"{Admin}/records/release", release);
        using var anonymousList = await anonymous.GetAsync($"{Admin}/audit");
        using var operatorPays = await PaymentsHost.PostAsync(ops, "/accounts", new { name = "mallory", currency = "EUR" });
        using var operatorReads = await ops.GetAsync("/accounts/anything");

        Assert.Equal(HttpStatusCode.Forbidden, tenantList.StatusCode);
        Assert.Equal("application/problem+json", tenantList.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.Forbidden, tenantRelease.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymousList.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, operatorPays.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, operatorReads.StatusCode);
        var record = await host.Services.GetRequiredService<IIdempotencyStore>().GetAsync(new("tenant-a", "POST /accounts", "stuck-bob"), default);
        Assert.Equal(IdempotencyRecordState.InProgress, record!.State);
        Assert.Equal(HttpStatusCode.NotFound, (await tenantA.GetAsync("/accounts/anything")).StatusCode);
    }
}
