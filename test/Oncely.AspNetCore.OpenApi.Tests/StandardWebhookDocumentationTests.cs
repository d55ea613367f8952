using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;
using Oncely.Webhooks;

namespace Oncely.AspNetCore.OpenApi.Tests;

/// <summary>
/// Standard Webhooks receivers in the generated document: a provider's simulator or a generated client must learn that a
/// delivery carries <c>webhook-id</c>, <c>webhook-timestamp</c> and <c>webhook-signature</c>, and what the 401 means,
/// not the advice to mint an Idempotency-Key that API clients get.
/// </summary>
public sealed class StandardWebhookDocumentationTests
{
    private const string Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    private static readonly string[] WebhookHeaders = ["webhook-id", "webhook-timestamp", "webhook-signature"];

    private static Task<OpenApiDocument> ServeAsync(Action<StandardWebhooksOptions>? webhooks = null) => OpenApiDocument.ServeAsync(
        app =>
        {
            app.MapPost("/webhooks/settlements", (Settlement settlement) => TypedResults.Ok()).AcceptStandardWebhooks("acme-pay");
            app.MapPost("/webhooks/by-event-id", (Settlement settlement) => TypedResults.Ok())
                .AcceptStandardWebhooks("acme-pay")
                .WithIdempotencyKeyFromJsonBody("/data/id");
            app.MapControllers(); // WebhooksController: POST /webhooks/mvc-style
            app.MapPost("/payments", (Settlement settlement) => TypedResults.Ok()).RequireIdempotencyKey();
        },
        services: s => s.AddControllers().AddApplicationPart(typeof(WebhooksController).Assembly),
        idempotency: oncely => oncely.AddStandardWebhooks(o =>
        {
            o.AddSender("acme-pay", Secret);
            webhooks?.Invoke(o);
        }));

    [Theory]
    [InlineData("/webhooks/settlements")]
    [InlineData("/webhooks/by-event-id")]
    [InlineData("/webhooks/mvc-style")]
    public async Task WebhookEndpoint_DocumentsTheThreeStandardWebhooksHeadersAsRequired(string path)
    {
        await using var document = await ServeAsync();
        var operation = document.Operation(path);

        foreach (var name in WebhookHeaders)
        {
            var parameters = operation.GetProperty("parameters").EnumerateArray()
                .Where(p => string.Equals(p.GetProperty("name").GetString(), name, StringComparison.OrdinalIgnoreCase))
                .ToArray();
            var parameter = Assert.Single(parameters);
            Assert.Equal("header", parameter.GetProperty("in").GetString());
            Assert.True(parameter.GetProperty("required").GetBoolean(), $"{name} is required");
            Assert.Equal("string", parameter.GetProperty("schema").GetProperty("type").GetString());
        }

        Assert.Null(OpenApiDocument.Parameter(operation, "Idempotency-Key"));
    }

    [Fact]
    public async Task WebhookEndpoint_HeadersSayWhatTheVerifierChecks()
    {
        await using var document = await ServeAsync(o => o.TimestampTolerance = TimeSpan.FromMinutes(3));
        var operation = document.Operation("/webhooks/settlements");

        var timestamp = OpenApiDocument.Parameter(operation, "webhook-timestamp")!.Value;
        Assert.Equal("^[0-9]+$", timestamp.GetProperty("schema").GetProperty("pattern").GetString());
        Assert.Contains("3 minutes", timestamp.GetProperty("description").GetString(), StringComparison.Ordinal);
        var signature = OpenApiDocument.Parameter(operation, "webhook-signature")!.Value.GetProperty("description").GetString();
        Assert.Contains("HMAC-SHA256", signature, StringComparison.Ordinal);
        Assert.Contains("{webhook-id}.{webhook-timestamp}.{body}", signature, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WebhookKey_DescribedAsTheSendersDeliveryIdWithoutClientKeyAdvice()
    {
        await using var document = await ServeAsync();

        var id = OpenApiDocument.Parameter(document.Operation("/webhooks/settlements"), "webhook-id")!.Value;
        var description = id.GetProperty("description").GetString()!;

        Assert.Contains("same on every redelivery", description, StringComparison.Ordinal);
        Assert.Contains("24 hours", description, StringComparison.Ordinal);
        Assert.DoesNotContain("UUID", description, StringComparison.Ordinal);
        Assert.DoesNotContain("Send a new unique value", description, StringComparison.Ordinal);
        Assert.DoesNotContain("X-Idempotency-Key", description, StringComparison.Ordinal);
        Assert.Equal(255, id.GetProperty("schema").GetProperty("maxLength").GetInt32());

        // An API endpoint next to it keeps the client advice.
        var key = OpenApiDocument.Parameter(document.Operation("/payments"), "Idempotency-Key")!.Value;
        Assert.Contains("Send a new unique value", key.GetProperty("description").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WebhookEndpoint_401IsTheSignatureRefusalAsProblemJson()
    {
        await using var document = await ServeAsync(o => o.TimestampTolerance = TimeSpan.FromSeconds(90));
        var operation = document.Operation("/webhooks/settlements");

        var unauthorized = OpenApiDocument.Response(operation, StatusCodes.Status401Unauthorized);
        var description = unauthorized.GetProperty("description").GetString()!;

        Assert.Contains("https://oncely.dev/problems/webhook-signature-invalid", description, StringComparison.Ordinal);
        Assert.Contains("https://oncely.dev/problems/webhook-timestamp-out-of-tolerance", description, StringComparison.Ordinal);
        Assert.Contains("90 seconds", description, StringComparison.Ordinal);
        Assert.DoesNotContain("idempotency-caller-unauthenticated", description, StringComparison.Ordinal);
        var schema = document.Resolve(unauthorized.GetProperty("content").GetProperty("application/problem+json").GetProperty("schema"));
        Assert.True(schema.GetProperty("properties").TryGetProperty("type", out _));
    }

    [Fact]
    public async Task WebhookIdKey_400DoesNotClaimAMissingKey()
    {
        // Without webhook-id the signature check answers 401 first; only a malformed id reaches the key rules.
        await using var document = await ServeAsync();

        var byHeader = OpenApiDocument.Response(document.Operation("/webhooks/settlements"), StatusCodes.Status400BadRequest).GetProperty("description").GetString();
        var byBody = OpenApiDocument.Response(document.Operation("/webhooks/by-event-id"), StatusCodes.Status400BadRequest).GetProperty("description").GetString();

        Assert.DoesNotContain("idempotency-key-missing", byHeader, StringComparison.Ordinal);
        Assert.Contains("idempotency-key-invalid", byHeader, StringComparison.Ordinal);
        Assert.Contains("idempotency-key-missing", byBody, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WebhookEndpoint_StoredAnswerCarriesIdempotentReplayed()
    {
        await using var document = await ServeAsync();

        var ok = OpenApiDocument.Response(document.Operation("/webhooks/settlements"), StatusCodes.Status200OK);

        Assert.Equal(JsonValueKind.Object, ok.GetProperty("headers").GetProperty("Idempotent-Replayed").ValueKind);
        Assert.Contains("409", OpenApiDocument.Statuses(document.Operation("/webhooks/settlements")));
    }

    public sealed record Settlement(string Type, SettlementData Data);

    public sealed record SettlementData(string Id, long Amount);
}

/// <summary>An MVC webhook receiver: <c>[Idempotent(KeyHeader = "webhook-id")]</c> with <c>[StandardWebhook]</c>.</summary>
[ApiController]
public sealed class WebhooksController : ControllerBase
{
    [HttpPost("/webhooks/mvc-style")]
    [Idempotent(KeyHeader = "webhook-id")]
    [StandardWebhook("acme-pay")]
    public IActionResult Receive(StandardWebhookDocumentationTests.Settlement settlement) => Ok();
}
