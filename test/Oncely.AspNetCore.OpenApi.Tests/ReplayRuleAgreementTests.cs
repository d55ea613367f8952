using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore.OpenApi.Tests;

/// <summary>
/// The document and the middleware follow one rule for which answers are stored: an answer the middleware replays is
/// documented with <c>Idempotent-Replayed</c>, and an answer documented with it is one the middleware replays.
/// </summary>
public sealed class ReplayRuleAgreementTests
{
    private static readonly int[] Statuses = [200, 201, 202, 204, 301, 303, 400, 403, 404, 408, 409, 410, 422, 425, 429, 500, 502, 503, 504];

    [Theory]
    [InlineData("/answers/global")]
    [InlineData("/answers/lenient")]
    public async Task ReplayedHeader_EveryStatus_DocumentedExactlyWhenTheMiddlewareReplays(string path)
    {
        await using var document = await OpenApiDocument.ServeAsync(
            app =>
            {
                Declare(app.MapPost("/answers/global", (int status) => Results.StatusCode(status)).RequireIdempotencyKey().AllowAnonymousIdempotency());
                Declare(app.MapPost("/answers/lenient", (int status) => Results.StatusCode(status)).RequireIdempotencyKey("lenient").AllowAnonymousIdempotency());
            },
            o => o.AddPolicy("lenient", p =>
            {
                p.StoreServerErrors = true;
                p.RetryableStatusCodes = [404];
            }));
        using var client = document.CreateClient();
        var operation = document.Operation(path);
        var seen = new HashSet<bool>();

        foreach (var status in Statuses)
        {
            var uri = string.Create(CultureInfo.InvariantCulture, $"{path}?status={status}");
            var key = string.Create(CultureInfo.InvariantCulture, $"key-{status}");
            (await client.SendAsync(Post(uri, key))).Dispose();
            using var retry = await client.SendAsync(Post(uri, key));
            var replayed = retry.Headers.TryGetValues("Idempotent-Replayed", out var values) && values.Contains("true");

            var response = OpenApiDocument.Response(operation, status);
            var documented = response.TryGetProperty("headers", out var headers) && headers.TryGetProperty("Idempotent-Replayed", out _);

            seen.Add(replayed);
            Assert.True(replayed == documented, $"{path} {status}: the middleware {(replayed ? "replays" : "does not replay")} it, the document {(documented ? "says" : "does not say")} it is replayed");
        }

        Assert.Equal(2, seen.Count); // some answers replayed, some released: the comparison is not vacuous
    }

    private static void Declare(RouteHandlerBuilder endpoint)
    {
        foreach (var status in Statuses)
        {
            endpoint.Produces(status);
        }
    }

    private static HttpRequestMessage Post(string uri, string key)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, uri);
        request.Headers.Add("Idempotency-Key", key);
        return request;
    }
}
