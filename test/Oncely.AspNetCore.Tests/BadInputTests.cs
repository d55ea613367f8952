using System.Net;
using System.Text;
using System.Text.Json;
using CsCheck;
using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore.Tests;

public class BadInputTests
{
    private static async Task<(int Status, string Body, IHeaderDictionary Headers)> SendRawAsync(TestApp app, string path, string? key, byte[] body, string? contentType = "application/json")
    {
        var context = await app.Server.SendAsync(c =>
        {
            c.Request.Method = "POST";
            c.Request.Path = path;
            if (contentType is not null)
            {
                c.Request.ContentType = contentType;
            }

            c.Request.Body = new MemoryStream(body);
            c.Request.ContentLength = body.Length;
            c.Request.Headers.Authorization = $"Test {TestApp.DefaultUser}";
            if (key is not null)
            {
                c.Request.Headers["Idempotency-Key"] = key;
            }
        });
        using var reader = new StreamReader(context.Response.Body);
        return (context.Response.StatusCode, await reader.ReadToEndAsync(), context.Response.Headers);
    }

    [Fact]
    public async Task RandomKeys_NeverA500_InvalidOnesNeverExecute()
    {
        await using var app = await TestApp.StartAsync();
        var executed = 0;
        var sample = Gen.OneOf(
            Gen.String,
            Gen.Char['!', '~'].Array[1, 300].Select(c => new string(c)),
            Gen.Byte.Array[0, 64].Select(b => Encoding.Latin1.GetString(b)),
            Gen.Char['\0', '\u001f'].Array[1, 10].Select(c => new string(c)));
        foreach (var key in sample.Array[200].Single())
        {
            // Raw header values (HttpClient would refuse some of them); the optional endpoint needs no body.
            var (status, body, _) = await SendRawAsync(app, "/optional", key, [], contentType: null);
            Assert.NotEqual(500, status);
            var valid = IdempotencyKeyParser.TryParse(key, 255, out _) == IdempotencyKeyError.None;
            if (valid)
            {
                Assert.True(status == 200, $"valid key {JsonSerializer.Serialize(key)} answered {status}: {body}");
                executed++;
            }
            else
            {
                Assert.True(status == 400, $"key {JsonSerializer.Serialize(key)} answered {status}");
                var type = JsonDocument.Parse(body).RootElement.GetProperty("type").GetString();
                Assert.True(type!.EndsWith("idempotency-key-invalid", StringComparison.Ordinal), type);
            }
        }

        // Each distinct valid key ran once; repeats (and bare/quoted spellings of one key) replayed.
        Assert.InRange(app.CallsTo("optional"), 1, executed);
    }

    [Theory]
    [InlineData("{\"amount\": ")]
    [InlineData("{\"amount\": 1,}")]
    [InlineData("not json at all")]
    [InlineData("{\"amount\":1,\"amount\":2}")]
    public async Task MalformedJsonBody_EndpointsOwn400_StoredAndReplayed_NeverA500(string json)
    {
        await using var app = await TestApp.StartAsync();
        var first = await app.PostAsync("/payments", "k", json);
        Assert.NotEqual(HttpStatusCode.InternalServerError, first.StatusCode);
        var second = await app.PostAsync("/payments", "k", json);
        Assert.Equal(first.StatusCode, second.StatusCode);
        if (first.StatusCode == HttpStatusCode.BadRequest)
        {
            // Model binding refused it before the handler ran; a deterministic 4xx is replayed.
            Assert.Equal(0, app.CallsTo("payments"));
            Assert.Equal("true", second.Headers.GetValues("Idempotent-Replayed").Single());
        }
        else
        {
            // Duplicate members bind (last wins): it ran once and replays.
            Assert.Equal(1, app.CallsTo("payments"));
        }
    }

    [Fact]
    public async Task EmptyBody_OnJsonEndpoint_400NotExecuted_OnBodylessEndpoint_Runs()
    {
        await using var app = await TestApp.StartAsync();
        var empty = await app.PostAsync("/payments", "k", json: null);
        Assert.InRange((int)empty.StatusCode, 400, 499);
        Assert.Equal(0, app.CallsTo("payments"));
        var emptyJson = await app.PostAsync("/payments", "k-empty-json", json: "");
        Assert.InRange((int)emptyJson.StatusCode, 400, 499);
        Assert.Equal(0, app.CallsTo("payments"));

        var bodyless = await app.PostAsync("/optional", "k2", json: null);
        Assert.Equal(HttpStatusCode.OK, bodyless.StatusCode);
        Assert.Equal(1, app.CallsTo("optional"));
    }

    [Fact]
    public async Task BodyOverLimit_RandomSizes_413AndNothingRuns()
    {
        await using var app = await TestApp.StartAsync(o => o.MaxRequestBodySize = 1000);
        foreach (var size in new[] { 1001, 4096, 100_000 })
        {
            var response = await app.PostAsync("/payments", $"k{size}", "{\"amount\":1,\"memo\":\"" + new string('m', size) + "\"}");
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
            Assert.Contains("idempotency-payload-too-large", await response.Content.ReadAsStringAsync());
        }

        Assert.Equal(0, app.CallsTo("payments"));
    }

    [Fact]
    public async Task InvalidOptions_FailAtStartWithMessageSayingWhatToChange()
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => TestApp.StartAsync(o =>
        {
            o.ReplayedHeaders.Add("Set-Cookie");
            o.Lease = TimeSpan.Zero;
        }));
        Assert.Contains("Set-Cookie", error.Message);
        Assert.Contains("Lease must be positive", error.Message);
    }
}
