using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;

namespace Oncely.AspNetCore.OpenApi.Tests;

/// <summary>
/// The document <c>Microsoft.AspNetCore.OpenApi</c> serves at <c>/openapi/v1.json</c>, with
/// <c>AddIdempotencyTransformer()</c>: what a client generator or a developer reading it learns about each endpoint.
/// </summary>
public sealed class IdempotencyOperationTransformerTests
{
    private static void Endpoints(WebApplication app)
    {
        app.MapPost("/payments", (PaymentRequest request) => TypedResults.Created("/payments/1", new Payment("pay_1", request.Amount)))
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status500InternalServerError)
            .RequireIdempotencyKey();
        app.MapPost("/refunds", (PaymentRequest request) => TypedResults.Ok(new Payment("re_1", request.Amount))).AllowIdempotencyKey();
        app.MapPost("/signups", () => TypedResults.Accepted("/signups/1")).RequireIdempotencyKey().AllowAnonymousIdempotency();
        app.MapPost("/transfers", ([FromHeader(Name = "Idempotency-Key")] string? key) => TypedResults.Ok()).RequireIdempotencyKey();
        app.MapPost("/plain", (PaymentRequest request) => TypedResults.Ok(new Payment("p_1", request.Amount)));
        app.MapGet("/accounts/{id}", (string id) => TypedResults.Ok(new Payment(id, 0)));
    }

    [Fact]
    public async Task NamedPolicy_DocumentsThePolicysLimitsAndStatusCodes()
    {
        await using var document = await OpenApiDocument.ServeAsync(
            app =>
            {
                app.MapPost("/payments", (PaymentRequest request) => TypedResults.Ok(new Payment("pay_1", request.Amount))).RequireIdempotencyKey();
                app.MapPost("/imports", (PaymentRequest request) => TypedResults.Ok(new Payment("imp_1", request.Amount))).RequireIdempotencyKey("imports");
            },
            o => o.AddPolicy("imports", p =>
            {
                p.MaxRequestBodySize = 4_000_000;
                p.KeyReusedStatusCode = StatusCodes.Status409Conflict;
                p.Expiration = TimeSpan.FromDays(3);
            }));

        var imports = document.Operation("/imports");
        var payments = document.Operation("/payments");

        Assert.Contains("4000000 bytes", OpenApiDocument.Response(imports, 413).GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("4000000 bytes", OpenApiDocument.Response(payments, 413).GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("422", OpenApiDocument.Statuses(imports));
        Assert.Contains("idempotency-key-reused", OpenApiDocument.Response(imports, 409).GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.Contains("422", OpenApiDocument.Statuses(payments));
        Assert.Contains("3 days", OpenApiDocument.Parameter(imports, "Idempotency-Key")!.Value.GetProperty("description").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task KeyFromOtherHeaderOrJsonMember_DocumentsWhereTheKeyIs()
    {
        await using var document = await OpenApiDocument.ServeAsync(app =>
        {
            app.MapPost("/hooks/header", (PaymentRequest request) => TypedResults.Ok()).RequireIdempotencyKey().WithIdempotencyKeyFromHeader("webhook-id");
            app.MapPost("/hooks/body", (PaymentRequest request) => TypedResults.Ok()).RequireIdempotencyKey().WithIdempotencyKeyFromJsonBody("/data/id");
        });

        var header = document.Operation("/hooks/header");
        var fromHeader = OpenApiDocument.Parameter(header, "webhook-id")!.Value;
        Assert.True(fromHeader.GetProperty("required").GetBoolean());
        Assert.DoesNotContain("X-Idempotency-Key", fromHeader.GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.Null(OpenApiDocument.Parameter(header, "Idempotency-Key"));

        var body = document.Operation("/hooks/body");
        Assert.Null(OpenApiDocument.Parameter(body, "Idempotency-Key"));
        Assert.Contains("the JSON member /data/id is the idempotency key", body.GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.Contains("the JSON member /data/id is missing", OpenApiDocument.Response(body, 400).GetProperty("description").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RequiredKey_DocumentsRequiredHeaderWithLengthAndCharacters()
    {
        await using var document = await OpenApiDocument.ServeAsync(Endpoints);

        var key = OpenApiDocument.Parameter(document.Operation("/payments"), "Idempotency-Key")!.Value;

        Assert.Equal("header", key.GetProperty("in").GetString());
        Assert.True(key.GetProperty("required").GetBoolean());
        var schema = key.GetProperty("schema");
        Assert.Equal("string", schema.GetProperty("type").GetString());
        Assert.Equal(1, schema.GetProperty("minLength").GetInt32());
        Assert.Equal(255, schema.GetProperty("maxLength").GetInt32());
        Assert.Equal("^[\\x21-\\x7E]+$", schema.GetProperty("pattern").GetString());
        Assert.Contains("same value on every retry", key.GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.Contains("X-Idempotency-Key", key.GetProperty("description").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task OptionalKey_DocumentsOptionalHeaderAndNoMissingKeyRefusal()
    {
        await using var document = await OpenApiDocument.ServeAsync(Endpoints);
        var operation = document.Operation("/refunds");

        var key = OpenApiDocument.Parameter(operation, "Idempotency-Key")!.Value;

        Assert.False(key.TryGetProperty("required", out var required) && required.GetBoolean());
        var badRequest = OpenApiDocument.Response(operation, 400).GetProperty("description").GetString();
        Assert.DoesNotContain("idempotency-key-missing", badRequest, StringComparison.Ordinal);
        Assert.Contains("idempotency-key-invalid", badRequest, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ProtectedStoredAnswers_Document410ForAnAnswerThatCanNoLongerBeDecrypted()
    {
        await using var protectedDocument = await OpenApiDocument.ServeAsync(Endpoints, idempotency: oncely => oncely.ProtectStoredAnswers());
        await using var plain = await OpenApiDocument.ServeAsync(Endpoints);

        var gone = OpenApiDocument.Response(protectedDocument.Operation("/payments"), 410);
        Assert.Contains("idempotency-stored-answer-unreadable", gone.GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.True(gone.GetProperty("content").TryGetProperty("application/problem+json", out _));
        Assert.DoesNotContain("410", OpenApiDocument.Statuses(plain.Operation("/payments")));
    }

    [Fact]
    public async Task IdempotentEndpoint_DocumentsEveryRefusalAsProblemJson()
    {
        await using var document = await OpenApiDocument.ServeAsync(Endpoints);
        var operation = document.Operation("/payments");

        Assert.Equal(["201", "400", "401", "409", "413", "422", "500", "503"], OpenApiDocument.Statuses(operation).Order(StringComparer.Ordinal));
        foreach (var status in new[] { 401, 409, 413, 422, 503 })
        {
            var response = OpenApiDocument.Response(operation, status);
            var schema = document.Resolve(response.GetProperty("content").GetProperty("application/problem+json").GetProperty("schema"));
            Assert.True(schema.GetProperty("properties").TryGetProperty("type", out _), $"{status}: not a problem schema");
            Assert.True(schema.GetProperty("properties").TryGetProperty("detail", out _), $"{status}: not a problem schema");
        }

        Assert.Contains("idempotency-request-in-progress", OpenApiDocument.Response(operation, 409).GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.Contains("idempotency-key-reused", OpenApiDocument.Response(operation, 422).GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.Contains("idempotency-payload-too-large", OpenApiDocument.Response(operation, 413).GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.Contains("idempotency-store-unavailable", OpenApiDocument.Response(operation, 503).GetProperty("description").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task InProgressAndStoreUnavailable_DocumentRetryAfter()
    {
        await using var document = await OpenApiDocument.ServeAsync(Endpoints, o => o.InProgressRetryAfter = TimeSpan.FromSeconds(3));
        var operation = document.Operation("/payments");

        var inProgress = OpenApiDocument.Response(operation, 409).GetProperty("headers").GetProperty("Retry-After");
        Assert.Equal("integer", inProgress.GetProperty("schema").GetProperty("type").GetString());
        Assert.Contains("3 as configured", inProgress.GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.True(OpenApiDocument.Response(operation, 503).GetProperty("headers").TryGetProperty("Retry-After", out _));
        Assert.False(OpenApiDocument.Response(operation, 422).TryGetProperty("headers", out _));
    }

    [Fact]
    public async Task StoredAnswers_CarryIdempotentReplayedAndRefusalsDoNot()
    {
        await using var document = await OpenApiDocument.ServeAsync(Endpoints);
        var operation = document.Operation("/payments");

        var replayed = OpenApiDocument.Response(operation, 201).GetProperty("headers").GetProperty("Idempotent-Replayed");
        Assert.Equal("boolean", replayed.GetProperty("schema").GetProperty("type").GetString());
        Assert.True(OpenApiDocument.Response(operation, 400).GetProperty("headers").TryGetProperty("Idempotent-Replayed", out _)); // the handler's own 400 is stored
        foreach (var status in new[] { 401, 409, 413, 422, 503, 500 })
        {
            var response = OpenApiDocument.Response(operation, status);
            Assert.False(response.TryGetProperty("headers", out var headers) && headers.TryGetProperty("Idempotent-Replayed", out _), $"{status} is never replayed");
        }
    }

    [Fact]
    public async Task StoreServerErrors_ServerErrorsCarryIdempotentReplayed()
    {
        await using var document = await OpenApiDocument.ServeAsync(Endpoints, o => o.StoreServerErrors = true);

        var serverError = OpenApiDocument.Response(document.Operation("/payments"), 500);

        Assert.True(serverError.GetProperty("headers").TryGetProperty("Idempotent-Replayed", out _));
    }

    [Fact]
    public async Task DeclaredStatus_KeepsItsContentAndGainsOncelysMeaning()
    {
        await using var document = await OpenApiDocument.ServeAsync(Endpoints);

        var badRequest = OpenApiDocument.Response(document.Operation("/payments"), 400);

        var schema = document.Resolve(badRequest.GetProperty("content").GetProperty("application/problem+json").GetProperty("schema"));
        Assert.True(schema.GetProperty("properties").TryGetProperty("errors", out _), "the endpoint's validation problem schema is kept");
        var description = badRequest.GetProperty("description").GetString()!;
        Assert.StartsWith("Bad Request", description, StringComparison.Ordinal);
        Assert.Contains("idempotency-key-missing", description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnonymousScope_No401()
    {
        await using var document = await OpenApiDocument.ServeAsync(Endpoints);

        Assert.DoesNotContain("401", OpenApiDocument.Statuses(document.Operation("/signups")));
        Assert.Contains("409", OpenApiDocument.Statuses(document.Operation("/signups")));
    }

    [Fact]
    public async Task HandlerBindsTheHeader_OneParameterWithOncelysRules()
    {
        await using var document = await OpenApiDocument.ServeAsync(Endpoints);

        var parameters = document.Operation("/transfers").GetProperty("parameters").EnumerateArray()
            .Where(p => string.Equals(p.GetProperty("name").GetString(), "Idempotency-Key", StringComparison.OrdinalIgnoreCase))
            .ToArray();

        var key = Assert.Single(parameters);
        Assert.True(key.GetProperty("required").GetBoolean());
        Assert.Equal(255, key.GetProperty("schema").GetProperty("maxLength").GetInt32());
    }

    [Fact]
    public async Task Options_KeyLengthReusedStatusAndAlias_FollowTheConfiguration()
    {
        await using var document = await OpenApiDocument.ServeAsync(Endpoints, o =>
        {
            o.MaxKeyLength = 64;
            o.KeyReusedStatusCode = StatusCodes.Status409Conflict;
            o.AcceptAliasHeader = false;
        });
        var operation = document.Operation("/payments");

        var key = OpenApiDocument.Parameter(operation, "Idempotency-Key")!.Value;
        Assert.Equal(64, key.GetProperty("schema").GetProperty("maxLength").GetInt32());
        Assert.DoesNotContain("X-Idempotency-Key", key.GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("422", OpenApiDocument.Statuses(operation));
        var conflict = OpenApiDocument.Response(operation, 409).GetProperty("description").GetString();
        Assert.Contains("idempotency-request-in-progress", conflict, StringComparison.Ordinal);
        Assert.Contains("idempotency-key-reused", conflict, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EndpointsWithoutIdempotency_Untouched()
    {
        await using var with = await OpenApiDocument.ServeAsync(Endpoints);
        await using var without = await OpenApiDocument.ServeAsync(Endpoints, withTransformer: false);

        foreach (var (path, method) in new[] { ("/plain", "post"), ("/accounts/{id}", "get") })
        {
            Assert.Equal(without.Operation(path, method).GetRawText(), with.Operation(path, method).GetRawText());
        }

        Assert.Null(OpenApiDocument.Parameter(with.Operation("/plain"), "Idempotency-Key"));
    }

    [Fact]
    public async Task MvcAction_IdempotentAttribute_Documented()
    {
        await using var document = await OpenApiDocument.ServeAsync(
            app => app.MapControllers(),
            services: s => s.AddControllers().AddApplicationPart(typeof(OrdersController).Assembly));

        var key = OpenApiDocument.Parameter(document.Operation("/orders"), "Idempotency-Key")!.Value;

        Assert.False(key.TryGetProperty("required", out var required) && required.GetBoolean());
        Assert.Contains("503", OpenApiDocument.Statuses(document.Operation("/orders")));
        Assert.Null(OpenApiDocument.Parameter(document.Operation("/orders/{id}", "get"), "Idempotency-Key"));
    }

    public sealed record PaymentRequest(long Amount);

    public sealed record Payment(string Id, long Amount);
}

[ApiController]
[Route("orders")]
public sealed class OrdersController : ControllerBase
{
    [HttpPost]
    [Idempotent(KeyRequired = false)]
    public IActionResult Create() => Created("/orders/1", new { id = 1 });

    [HttpGet("{id}")]
    public IActionResult Get(int id) => Ok(new { id });
}
