using System.Net;
using System.Text.Json;

namespace Payments.Tests;

/// <summary>The sample's API description and health check: served to anyone, without an API key.</summary>
public sealed class OperationalEndpointsTests
{
    [Fact]
    public async Task OpenApi_WithoutApiKey_DescribesOncelyOnIdempotentEndpointsOnly()
    {
        await using var host = await PaymentsHost.StartAsync();
        using var client = host.Client(apiKey: null);

        using var response = await client.GetAsync("/openapi/v1.json");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var paths = document.RootElement.GetProperty("paths");
        var pay = paths.GetProperty("/payments").GetProperty("post");
        var key = pay.GetProperty("parameters").EnumerateArray().Single(p => p.GetProperty("name").GetString() == "Idempotency-Key");
        Assert.Equal("header", key.GetProperty("in").GetString());
        Assert.True(key.GetProperty("required").GetBoolean());
        Assert.Equal(255, key.GetProperty("schema").GetProperty("maxLength").GetInt32());
        var responses = pay.GetProperty("responses");
        Assert.True(responses.GetProperty("409").GetProperty("headers").TryGetProperty("Retry-After", out _));
        Assert.True(responses.GetProperty("503").GetProperty("content").TryGetProperty("application/problem+json", out _));
        Assert.True(responses.TryGetProperty("422", out _));
        var read = paths.GetProperty("/accounts/{id}").GetProperty("get");
        Assert.False(read.TryGetProperty("parameters", out var parameters) && parameters.EnumerateArray().Any(p => p.GetProperty("name").GetString() == "Idempotency-Key"));
        Assert.False(read.GetProperty("responses").TryGetProperty("409", out _));
    }

    // Issue 17, item 9: the creating endpoints answer 201 with their resource; the document said 200 without a body.
    [Theory]
    [InlineData("/accounts", "201", "Account", "400,401,403,415")]
    [InlineData("/accounts/{id}/deposits", "201", "Deposit", "400,401,403,404,415")]
    [InlineData("/payments", "201", "Payment", "400,401,403,404,415,422")]
    [InlineData("/payouts", "202", "PayoutAccepted", "400,401,403,415")]
    [InlineData("/webhooks/settlements", "200", "Settlement", "400,404,413,415,422")]
    public async Task OpenApi_PostEndpoints_DocumentTheirRealSuccessAndProblems(string path, string success, string schema, string problems)
    {
        await using var host = await PaymentsHost.StartAsync();
        using var client = host.Client(apiKey: null);

        using var response = await client.GetAsync("/openapi/v1.json");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var responses = document.RootElement.GetProperty("paths").GetProperty(path).GetProperty("post").GetProperty("responses");
        var successes = responses.EnumerateObject().Where(r => r.Name.StartsWith('2')).Select(r => r.Name).ToList();
        Assert.Equal([success], successes);
        var body = responses.GetProperty(success).GetProperty("content").GetProperty("application/json").GetProperty("schema");
        Assert.Equal($"#/components/schemas/{schema}", body.GetProperty("$ref").GetString());
        Assert.True(document.RootElement.GetProperty("components").GetProperty("schemas").TryGetProperty(schema, out _));
        foreach (var status in problems.Split(','))
        {
            Assert.True(responses.TryGetProperty(status, out var problem), $"{path} documents no {status}");
            Assert.True(problem.GetProperty("content").TryGetProperty("application/problem+json", out _), $"{path}: {status} is not problem+json");
        }
    }

    [Theory]
    [InlineData("/accounts/{id}", "Account")]
    [InlineData("/payments/{id}", "Payment")]
    public async Task OpenApi_Reads_Document200WithTheirBodyAnd404(string path, string schema)
    {
        await using var host = await PaymentsHost.StartAsync();
        using var client = host.Client(apiKey: null);

        using var document = JsonDocument.Parse(await client.GetStringAsync("/openapi/v1.json"));

        var responses = document.RootElement.GetProperty("paths").GetProperty(path).GetProperty("get").GetProperty("responses");
        Assert.Equal($"#/components/schemas/{schema}", responses.GetProperty("200").GetProperty("content").GetProperty("application/json").GetProperty("schema").GetProperty("$ref").GetString());
        Assert.True(responses.GetProperty("404").GetProperty("content").TryGetProperty("application/problem+json", out _));
    }

    [Fact]
    public async Task Health_WithoutApiKey_HealthyWhenTheStoreAnswers()
    {
        await using var host = await PaymentsHost.StartAsync();
        using var client = host.Client(apiKey: null);

        using var response = await client.GetAsync("/health");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Healthy", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Api_WithoutApiKey_StillRefused()
    {
        await using var host = await PaymentsHost.StartAsync();
        using var client = host.Client(apiKey: null);

        using var response = await client.GetAsync("/accounts/acc_1");

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Fact]
    public async Task Health_WithoutIdempotency_ServedAndHealthy()
    {
        await using var host = await PaymentsHost.StartAsync(idempotency: false);
        using var client = host.Client(apiKey: null);

        using var response = await client.GetAsync("/health");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
