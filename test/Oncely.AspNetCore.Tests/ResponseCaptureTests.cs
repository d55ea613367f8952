using System.Net;

namespace Oncely.AspNetCore.Tests;

public class ResponseCaptureTests
{
    [Theory]
    [InlineData("stream")]
    [InlineData("sync")]
    [InlineData("pipe")]
    [InlineData("sendfile")]
    public async Task Capture_EveryWriteApi_ReachesClientAndReplaysExactBytes(string mode)
    {
        await using var app = await TestApp.StartAsync();
        var first = await app.PostAsync($"/write/{mode}", "k", json: null);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal($"written with {mode}", await first.Content.ReadAsStringAsync());

        var replay = await app.PostAsync($"/write/{mode}", "k", json: null);
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal($"written with {mode}", await replay.Content.ReadAsStringAsync());
        Assert.Equal("text/plain", replay.Content.Headers.ContentType!.MediaType);
        Assert.Equal(1, app.CallsTo($"write-{mode}"));
    }

    [Fact]
    public async Task Capture_LargeBinaryBody_ReplaysByteForByte()
    {
        await using var app = await TestApp.StartAsync();
        var first = await app.PostAsync("/big/300000", "k", json: null);
        var replay = await app.PostAsync("/big/300000", "k", json: null);
        Assert.Equal(await first.Content.ReadAsByteArrayAsync(), await replay.Content.ReadAsByteArrayAsync());
        Assert.Equal(300_000, (await replay.Content.ReadAsByteArrayAsync()).Length);
    }
}
