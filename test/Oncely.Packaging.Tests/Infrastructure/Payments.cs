using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace Oncely.Packaging.Tests;

/// <summary>The calls a payments client makes against an app with <c>POST /payments</c>, and what each must answer.</summary>
public static class Payments
{
    public static HttpRequestMessage Pay(string? key, string json, string? token = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "payments") { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (key is not null)
        {
            request.Headers.Add("Idempotency-Key", key);
        }

        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return request;
    }

    /// <summary>
    /// 201 then its replay (same Location and body, <c>Idempotent-Replayed: true</c>); a duplicate sent while the first
    /// runs is 409 with <c>Retry-After</c>; the same key with another body 422; no key 400. <paramref name="slowHandler"/>:
    /// the app's handler takes long enough for a duplicate to arrive while it runs.
    /// </summary>
    public static async Task AssertIdempotentAsync(HttpClient client, string? token, bool expectMissingKey400 = true)
    {
        const string Body = """{"amount":250,"currency":"EUR"}""";
        var key = "order-" + Guid.NewGuid().ToString("N")[..8];

        using var first = await client.SendAsync(Pay(key, Body, token));
        var firstBody = await first.Content.ReadAsStringAsync();
        Assert.True(first.StatusCode == HttpStatusCode.Created, $"first call: {(int)first.StatusCode} {firstBody}");
        Assert.False(first.Headers.Contains("Idempotent-Replayed"), "the first answer is not a replay");
        Assert.Contains("\"amount\":250", firstBody, StringComparison.Ordinal);

        using var replay = await client.SendAsync(Pay(key, Body, token));
        Assert.Equal(HttpStatusCode.Created, replay.StatusCode);
        Assert.Equal("true", Assert.Single(replay.Headers.GetValues("Idempotent-Replayed")));
        Assert.Equal(first.Headers.Location, replay.Headers.Location);
        Assert.Equal(firstBody, await replay.Content.ReadAsStringAsync());

        // A duplicate while the first still runs (the handler takes about two seconds).
        var parallelKey = key + "-parallel";
        var running = client.SendAsync(Pay(parallelKey, Body, token));
        await Task.Delay(TimeSpan.FromMilliseconds(700));
        using (var duplicate = await client.SendAsync(Pay(parallelKey, Body, token)))
        {
            Assert.True(duplicate.StatusCode == HttpStatusCode.Conflict, $"duplicate in progress: {(int)duplicate.StatusCode} {await duplicate.Content.ReadAsStringAsync()}");
            Assert.NotNull(duplicate.Headers.RetryAfter);
            Assert.Contains("idempotency-request-in-progress", await duplicate.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var original = await running)
        {
            Assert.Equal(HttpStatusCode.Created, original.StatusCode);
        }

        using var reused = await client.SendAsync(Pay(key, """{"amount":999,"currency":"EUR"}""", token));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, reused.StatusCode);
        Assert.Contains("idempotency-key-reused", await reused.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        if (expectMissingKey400)
        {
            using var missing = await client.SendAsync(Pay(null, Body, token));
            Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
            Assert.Contains("idempotency-key-missing", await missing.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
    }
}
