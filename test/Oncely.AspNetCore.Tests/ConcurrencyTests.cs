using System.Net;

namespace Oncely.AspNetCore.Tests;

public class ConcurrencyTests
{
    [Fact]
    public async Task HundredParallelRequests_OneKey_HandlerRunsExactlyOnce()
    {
        await using var app = await TestApp.StartAsync(realClock: true);
        using var start = new ManualResetEventSlim();
        var requests = Enumerable.Range(0, 100).Select(_ => Task.Run(async () =>
        {
            start.Wait();
            var response = await app.PostAsync("/payments", "one-key", "{\"amount\":250}");
            return (response, body: await response.Content.ReadAsStringAsync());
        })).ToArray();
        start.Set();
        var answers = await Task.WhenAll(requests);

        Assert.Equal(1, app.CallsTo("payments"));
        var executed = Assert.Single(answers, a => a.response.StatusCode == HttpStatusCode.Created && !a.response.Headers.Contains("Idempotent-Replayed"));
        foreach (var (response, body) in answers)
        {
            if (response.StatusCode == HttpStatusCode.Conflict)
            {
                Assert.Equal("1", response.Headers.RetryAfter!.ToString());
                Assert.Contains("idempotency-request-in-progress", body);
            }
            else
            {
                Assert.Equal(HttpStatusCode.Created, response.StatusCode);
                Assert.Equal(executed.body, body);
            }
        }
    }

    [Fact]
    public async Task TwentyKeysInterleaved_EachHandlerRunsExactlyOnce()
    {
        await using var app = await TestApp.StartAsync(realClock: true);
        using var start = new ManualResetEventSlim();
        var requests = Enumerable.Range(0, 200).Select(i => Task.Run(async () =>
        {
            start.Wait();
            var key = $"key-{i % 20}";
            var response = await app.PostAsync("/payments", key, $"{{\"amount\":{i % 20}}}");
            return (key, response, body: await response.Content.ReadAsStringAsync());
        })).ToArray();
        start.Set();
        var answers = await Task.WhenAll(requests);

        Assert.Equal(20, app.CallsTo("payments"));
        foreach (var group in answers.GroupBy(a => a.key))
        {
            var executed = Assert.Single(group, a => a.response.StatusCode == HttpStatusCode.Created && !a.response.Headers.Contains("Idempotent-Replayed"));
            Assert.All(group.Where(a => a.response.StatusCode != HttpStatusCode.Conflict), a => Assert.Equal(executed.body, a.body));
            Assert.All(group, a => Assert.Contains(a.response.StatusCode, new[] { HttpStatusCode.Created, HttpStatusCode.Conflict }));
        }

        // Afterwards every key replays its own first answer.
        foreach (var group in answers.GroupBy(a => a.key))
        {
            var executed = group.Single(a => a.response.StatusCode == HttpStatusCode.Created && !a.response.Headers.Contains("Idempotent-Replayed"));
            var replay = await app.PostAsync("/payments", group.Key, $"{{\"amount\":{int.Parse(group.Key[4..])}}}");
            Assert.Equal(executed.body, await replay.Content.ReadAsStringAsync());
        }

        Assert.Equal(20, app.CallsTo("payments"));
    }
}
