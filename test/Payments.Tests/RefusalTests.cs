using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace Payments.Tests;

/// <summary>
/// Issue 9: every refusal is a 4xx problem+json answer, whatever the client's <c>Accept</c>, <c>Content-Type</c> or body,
/// and a refused request executes nothing.
/// </summary>
public sealed class RefusalTests : IAsyncLifetime
{
    private PaymentsHost _host = null!;

    public async Task InitializeAsync() => _host = await PaymentsHost.StartAsync();

    public async Task DisposeAsync() => await _host.DisposeAsync();

    [Theory]
    [InlineData("text/html")]
    [InlineData("application/xml")]
    [InlineData("image/png")]
    public async Task MissingApiKey_AcceptWithoutJson_Returns401Problem(string accept)
    {
        using var client = _host.Client(apiKey: null);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/accounts/acc_1");
        request.Headers.Accept.ParseAdd(accept);

        using var response = await client.SendAsync(request);

        await EndpointTests.AssertProblemAsync(response, HttpStatusCode.Unauthorized, "missing-api-key");
    }

    [Theory]
    [InlineData("text/html")]
    [InlineData("application/xml")]
    [InlineData("image/png")]
    public async Task UnknownApiKey_AcceptWithoutJson_Returns401Problem(string accept)
    {
        using var client = _host.Client(apiKey: "sk_live_nobody");
        using var request = Post("/accounts", """{"name":"alice","currency":"EUR"}""", "application/json");
        request.Headers.Accept.ParseAdd(accept);

        using var response = await client.SendAsync(request);

        await EndpointTests.AssertProblemAsync(response, HttpStatusCode.Unauthorized, "unknown-api-key");
        Assert.Equal(0, await CountAsync("accounts"));
    }

    [Fact]
    public async Task ValidationProblem_AcceptHtml_Returns400Problem()
    {
        using var client = _host.Client();
        using var request = Post("/accounts", """{"name":"alice","currency":"euro"}""", "application/json");
        request.Headers.Accept.ParseAdd("text/html");

        using var response = await client.SendAsync(request);

        await EndpointTests.AssertProblemAsync(response, HttpStatusCode.BadRequest, "validation-failed");
    }

    [Theory]
    [InlineData("GET", "/nowhere", HttpStatusCode.NotFound)]
    [InlineData("DELETE", "/accounts", HttpStatusCode.MethodNotAllowed)]
    public async Task RoutingRefusal_AcceptHtml_ReturnsProblem(string method, string path, HttpStatusCode status)
    {
        using var client = _host.Client();
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        request.Headers.Accept.ParseAdd("text/html");

        using var response = await client.SendAsync(request);

        Assert.Equal(status, response.StatusCode);
        Assert.Equal((int)status, (await EndpointTests.ProblemAsync(response)).GetProperty("status").GetInt32());
    }

    [Theory]
    [InlineData("SK_TEST_TENANT_A")]
    [InlineData("Sk_Test_Tenant_A")]
    [InlineData("sk_test_tenant_A")]
    public async Task ApiKey_OtherCase_Returns401Problem(string apiKey)
    {
        using var owner = _host.Client(PaymentsHost.TenantA);
        var account = await PaymentsHost.CreateAccountAsync(owner);
        using var client = _host.Client(apiKey);

        using var read = await client.GetAsync($"/accounts/{account.Id}");
        using var write = await PaymentsHost.PostAsync(client, "/accounts", new { name = "mallory", currency = "EUR" });

        await EndpointTests.AssertProblemAsync(read, HttpStatusCode.Unauthorized, "unknown-api-key");
        await EndpointTests.AssertProblemAsync(write, HttpStatusCode.Unauthorized, "unknown-api-key");
        Assert.Equal(1, await CountAsync("accounts"));
    }

    [Theory]
    [InlineData("application/json; charset=")]
    [InlineData("application/json; charset=bogus")]
    [InlineData("application/json; charset=utf-7")]
    [InlineData("application/json; charset=\"bogus\"")]
    [InlineData("application/json; charset=\"\"")]
    [InlineData("application/json; charset=\"utf-8\"; charset=utf-16")]
    [InlineData("application/json; charset=utf-16")]
    [InlineData("application/json; charset=iso-8859-1")]
    public async Task CreateAccount_UnsupportedCharset_Returns415ProblemAndExecutesNothing(string contentType)
    {
        using var client = _host.Client();
        using var request = Post("/accounts", """{"name":"alice","currency":"EUR"}""", contentType);

        using var response = await client.SendAsync(request);

        await EndpointTests.AssertProblemAsync(response, HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
        Assert.Equal(0, await CountAsync("accounts"));
        Assert.Equal(0, await CountAsync("oncely_records"));
    }

    [Theory]
    [InlineData("application/json; charset=bogus")]
    [InlineData("application/json; charset=utf-7")]
    [InlineData("text/plain")]
    public async Task Payment_UnsupportedContentType_Returns415ProblemAndMovesNothing(string contentType)
    {
        using var client = _host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        using var request = Post("/payments", $$"""{"from":"{{alice.Id}}","to":"{{bob.Id}}","amount":250,"currency":"EUR"}""", contentType);

        using var response = await client.SendAsync(request);

        await EndpointTests.AssertProblemAsync(response, HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
        Assert.Equal(0, await _host.Ledger.CountPaymentsAsync());
        Assert.Equal(1000, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
    }

    [Theory]
    [InlineData("application/json")]
    [InlineData("application/json; charset=utf-8")]
    [InlineData("application/json; charset=UTF-8")]
    [InlineData("application/json; charset=\"utf-8\"")]
    [InlineData("application/json; charset=\"UTF-8\"")]
    [InlineData("application/json;charset=\"utf-8\"")]
    public async Task CreateAccount_Utf8OrNoCharset_Returns201(string contentType)
    {
        using var client = _host.Client();
        using var request = Post("/accounts", """{"name":"alice","currency":"EUR"}""", contentType);

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal(1, await CountAsync("accounts"));
    }

    // Issue 17, item 10: charset="utf-8" is the unquoted parameter in another spelling (RFC 9110 §5.6.6), so a retry
    // in the other spelling is the same request: replayed, never a key reuse and never a second execution. The retry's
    // members are reordered and spaced: it replays only if both spellings' bodies were canonicalised as JSON.
    [Theory]
    [InlineData("application/json; charset=\"utf-8\"", "application/json; charset=utf-8")]
    [InlineData("application/json; charset=utf-8", "application/json; charset=\"utf-8\"")]
    [InlineData("application/json", "application/json; charset=\"UTF-8\"")]
    public async Task CreateAccount_RetryWithTheOtherCharsetSpelling_ReplaysTheFirstAnswer(string first, string retry)
    {
        using var client = _host.Client();
        var key = Guid.NewGuid().ToString();

        using var created = await client.SendAsync(Post("/accounts", """{"name":"alice","currency":"EUR"}""", first, key));
        using var replayed = await client.SendAsync(Post("/accounts", """{ "currency": "EUR", "name": "alice" }""", retry, key));

        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal(HttpStatusCode.Created, replayed.StatusCode);
        Assert.Equal("true", Assert.Single(replayed.Headers.GetValues("Idempotent-Replayed")));
        Assert.Equal(await created.Content.ReadAsStringAsync(), await replayed.Content.ReadAsStringAsync());
        Assert.Equal(1, await CountAsync("accounts"));
    }

    [Fact]
    public async Task Payment_QuotedUtf8Charset_Returns201AndMovesMoneyOnce()
    {
        using var client = _host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        var key = Guid.NewGuid().ToString();
        var body = $$"""{"from":"{{alice.Id}}","to":"{{bob.Id}}","amount":250,"currency":"EUR"}""";

        using var paid = await client.SendAsync(Post("/payments", body, "application/json; charset=\"utf-8\"", key));
        using var replayed = await client.SendAsync(Post("/payments", body, "application/json; charset=utf-8", key));

        Assert.Equal(HttpStatusCode.Created, paid.StatusCode);
        Assert.Equal("true", Assert.Single(replayed.Headers.GetValues("Idempotent-Replayed")));
        Assert.Equal(1, await _host.Ledger.CountPaymentsAsync());
        Assert.Equal(750, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
    }

    [Theory]
    [InlineData("""{"amount":"100"}""")]
    [InlineData("""{"amount":100.5}""")]
    [InlineData("""{"amount":"NaN"}""")]
    [InlineData("""{"amount":""")]
    public async Task Deposit_AmountNotAnInteger_Returns400ProblemAndExecutesNothing(string body)
    {
        using var client = _host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var records = await CountAsync("oncely_records");

        using var response = await client.SendAsync(Post($"/accounts/{alice.Id}/deposits", body, "application/json"));

        await EndpointTests.AssertProblemAsync(response, HttpStatusCode.BadRequest, "invalid-body");
        Assert.Equal(1000, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
        Assert.Equal(1, await CountAsync("deposits"));
        Assert.Equal(records, await CountAsync("oncely_records"));
    }

    [Fact]
    public async Task Payment_AmountAsString_Returns400ProblemAndMovesNothing()
    {
        using var client = _host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        using var request = Post("/payments", $$"""{"from":"{{alice.Id}}","to":"{{bob.Id}}","amount":"250","currency":"EUR"}""", "application/json");

        using var response = await client.SendAsync(request);

        await EndpointTests.AssertProblemAsync(response, HttpStatusCode.BadRequest, "invalid-body");
        Assert.Equal(0, await _host.Ledger.CountPaymentsAsync());
        Assert.Equal(1000, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
    }

    [Fact]
    public async Task Payment_AmountAsStringThenFixed_SameKeyExecutesTheFixedRequest()
    {
        // The refused attempt stored nothing, so the client may correct the body and retry under the same key.
        using var client = _host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        var key = Guid.NewGuid().ToString();
        using var refused = await client.SendAsync(Post("/payments", $$"""{"from":"{{alice.Id}}","to":"{{bob.Id}}","amount":"250","currency":"EUR"}""", "application/json", key));

        using var fixedRequest = await client.SendAsync(Post("/payments", $$"""{"from":"{{alice.Id}}","to":"{{bob.Id}}","amount":250,"currency":"EUR"}""", "application/json", key));

        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal(HttpStatusCode.Created, fixedRequest.StatusCode);
        Assert.Equal(750, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
    }

    private static HttpRequestMessage Post(string path, string body, string contentType, string? key = null)
    {
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
        content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
        request.Headers.Add("Idempotency-Key", key ?? Guid.NewGuid().ToString());
        return request;
    }

    private async Task<long> CountAsync(string table)
    {
        await using var connection = await _host.Ledger.Dialect.OpenAsync(CancellationToken.None);
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT COUNT(*) FROM {table}";
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
