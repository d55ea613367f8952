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
