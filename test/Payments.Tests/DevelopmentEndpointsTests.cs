using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Payments.Tests;

/// <summary>
/// Issue 17, item 14: the operator walkthrough's stuck key, made by <c>POST /dev/stuck-keys/accounts</c>, which exists in
/// the Development environment and nowhere else.
/// </summary>
public sealed class DevelopmentEndpointsTests
{
    private const string Stuck = "/dev/stuck-keys/accounts";
    private const string Carol = "{\"name\":\"carol\",\"currency\":\"EUR\"}";

    [Fact]
    public async Task StuckKey_InDevelopment_TheReadmeWalkthroughFindsItReleasesItAndTheRetryCreatesTheAccountOnce()
    {
        await using var host = await PaymentsHost.StartAsync(environment: "Development");
        using var tenant = host.Client();
        using var ops = host.Client(PaymentsHost.Operator);

        using var stranded = await PostJsonAsync(tenant, $"{Stuck}?key=walkthrough-carol", Carol);
        using var blocked = await PostJsonAsync(tenant, "/accounts", Carol, "walkthrough-carol");
        var listed = await ops.GetFromJsonAsync<JsonElement>("/admin/idempotency/records?state=InProgress&olderThan=PT0S");
        var record = Assert.Single(listed.GetProperty("records").EnumerateArray());
        using var released = await ops.PostAsJsonAsync("/admin/idempotency/records/release", new
        {
            tenant = "tenant-a",
            operation = "POST /accounts",
            key = "walkthrough-carol",
            fencingToken = record.GetProperty("fencingToken").GetInt64(),
        });
        using var retry = await PostJsonAsync(tenant, "/accounts", Carol, "walkthrough-carol");
        using var replay = await PostJsonAsync(tenant, "/accounts", Carol, "walkthrough-carol");

        Assert.Equal(HttpStatusCode.Created, stranded.StatusCode);
        var made = await stranded.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("InProgress", made.GetProperty("state").GetString());
        Assert.Equal(record.GetProperty("fencingToken").GetInt64(), made.GetProperty("fencingToken").GetInt64());
        Assert.Equal(HttpStatusCode.Conflict, blocked.StatusCode);
        Assert.Equal("https://oncely.dev/problems/idempotency-request-in-progress", (await blocked.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("type").GetString());
        Assert.Equal(("tenant-a", "POST /accounts", "walkthrough-carol"), (record.GetProperty("tenant").GetString(), record.GetProperty("operation").GetString(), record.GetProperty("key").GetString()));
        Assert.True(record.GetProperty("leaseExpiresAt").GetDateTimeOffset() > DateTimeOffset.UtcNow.AddMinutes(5));
        Assert.Equal(HttpStatusCode.NoContent, released.StatusCode);
        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.False(retry.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal("true", Assert.Single(replay.Headers.GetValues("Idempotent-Replayed")));
        Assert.Equal(await retry.Content.ReadAsStringAsync(), await replay.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task StuckKey_KeyAlreadyRecorded_409AndTheRecordUntouched()
    {
        await using var host = await PaymentsHost.StartAsync(environment: "Development");
        using var tenant = host.Client();
        using var created = await PostJsonAsync(tenant, "/accounts", Carol, "carol-done");

        using var stranded = await PostJsonAsync(tenant, $"{Stuck}?key=carol-done", Carol);
        using var missingKey = await PostJsonAsync(tenant, Stuck, Carol);
        using var replay = await PostJsonAsync(tenant, "/accounts", Carol, "carol-done");

        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        await EndpointTests.AssertProblemAsync(stranded, HttpStatusCode.Conflict, "key-already-recorded");
        await EndpointTests.AssertProblemAsync(missingKey, HttpStatusCode.BadRequest, "validation-failed");
        Assert.Equal("true", Assert.Single(replay.Headers.GetValues("Idempotent-Replayed")));
    }

    [Theory]
    [InlineData("Production")]
    [InlineData("Staging")]
    public async Task StuckKey_OutsideDevelopment_DoesNotExist(string environment)
    {
        await using var host = await PaymentsHost.StartAsync(environment: environment);
        using var tenant = host.Client();

        using var stranded = await PostJsonAsync(tenant, $"{Stuck}?key=walkthrough-carol", Carol);
        using var created = await PostJsonAsync(tenant, "/accounts", Carol, "walkthrough-carol");

        Assert.Equal(HttpStatusCode.NotFound, stranded.StatusCode);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.False(created.Headers.Contains("Idempotent-Replayed"));
    }

    // Issue 23: the effects counter oncely-check --effects-url reads (docs/check.md).
    [Fact]
    public async Task AccountEffects_InDevelopment_CountsTheCallersAccountsOnly()
    {
        await using var host = await PaymentsHost.StartAsync(environment: "Development");
        using var tenantA = host.Client();
        using var tenantB = host.Client(PaymentsHost.TenantB);

        var before = await tenantA.GetStringAsync(DevelopmentEndpoints.AccountEffectsPath);
        using var first = await PostJsonAsync(tenantA, "/accounts", Carol, "effects-1");
        using var replay = await PostJsonAsync(tenantA, "/accounts", Carol, "effects-1");
        using var second = await PostJsonAsync(tenantA, "/accounts", Carol, "effects-2");
        using var other = await PostJsonAsync(tenantB, "/accounts", Carol, "effects-1");
        var afterA = await tenantA.GetStringAsync(DevelopmentEndpoints.AccountEffectsPath);
        var afterB = await tenantB.GetStringAsync(DevelopmentEndpoints.AccountEffectsPath);
        using var anonymous = await host.Client(apiKey: null).GetAsync(DevelopmentEndpoints.AccountEffectsPath);

        Assert.Equal("0", before);
        Assert.Equal("2", afterA);
        Assert.Equal("1", afterB);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
    }

    [Theory]
    [InlineData("Production")]
    [InlineData("Staging")]
    public async Task AccountEffects_OutsideDevelopment_DoesNotExist(string environment)
    {
        await using var host = await PaymentsHost.StartAsync(environment: environment);
        using var tenant = host.Client();

        using var response = await tenant.GetAsync(DevelopmentEndpoints.AccountEffectsPath);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task StuckKey_InDevelopment_NotInTheOpenApiDocument()
    {
        await using var host = await PaymentsHost.StartAsync(environment: "Development");
        using var client = host.Client(apiKey: null);

        var document = await client.GetStringAsync("/openapi/v1.json");

        Assert.Contains("\"/accounts\"", document, StringComparison.Ordinal);
        Assert.DoesNotContain("/dev/", document, StringComparison.Ordinal);
    }

    private static Task<HttpResponseMessage> PostJsonAsync(HttpClient client, string path, string json, string? key = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (key is not null)
        {
            request.Headers.Add("Idempotency-Key", key);
        }

        return client.SendAsync(request);
    }
}
