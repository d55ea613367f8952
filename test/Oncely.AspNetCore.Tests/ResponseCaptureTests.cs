using System.Buffers;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

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

    // On Kestrel, whose BodyWriter the capture tees (issue 20): blocks committed with GetSpan/GetMemory + Advance, left
    // unflushed, mixed with stream writes, a writer the handler completes itself, and a JSON result all reach the client
    // whole and in order, and the replay is byte for byte the same.
    [Theory]
    [InlineData("advance-unflushed")]
    [InlineData("mixed")]
    [InlineData("writer-completed")]
    [InlineData("json")]
    [InlineData("content-length")]
    public async Task Capture_KestrelBodyWriter_ClientAndReplayGetSameBytes(string mode)
    {
        await using var app = await PipelineApp.StartAsync(kestrel: true, pipeline: (web, self) =>
        {
            web.UseAuthentication();
            web.UseIdempotency();
            web.MapPost("/tee/{mode}", async (HttpContext context, string mode) =>
            {
                self.Count(mode);
                var response = context.Response;
                response.ContentType = "text/plain";
                switch (mode)
                {
                    case "advance-unflushed":
                        for (var i = 0; i < 50; i++)
                        {
                            // A large hint, a small commit: only the committed bytes count.
                            var span = response.BodyWriter.GetSpan(4096);
                            var written = Encoding.ASCII.GetBytes($"line {i};", span);
                            response.BodyWriter.Advance(written);
                        }

                        break;
                    case "mixed":
                        await response.Body.WriteAsync(Encoding.ASCII.GetBytes("stream-1;"));
                        await response.BodyWriter.WriteAsync(Encoding.ASCII.GetBytes("writer-2;"));
                        response.BodyWriter.Write(Encoding.ASCII.GetBytes("writer-3;"));
                        await response.BodyWriter.FlushAsync();
                        await response.Body.WriteAsync(Encoding.ASCII.GetBytes("stream-4;"));
                        break;
                    case "writer-completed":
                        response.BodyWriter.Write(Encoding.ASCII.GetBytes("then completed"));
                        await response.BodyWriter.CompleteAsync();
                        break;
                    case "json":
                        return Results.Json(new { id = "p-1", amount = 1234, lines = Enumerable.Range(0, 40).ToArray() }, statusCode: 201);
                    default:
                        var body = Encoding.ASCII.GetBytes(new string('x', 20_000));
                        response.ContentLength = body.Length;
                        var memory = response.BodyWriter.GetMemory(body.Length);
                        body.AsSpan(0, 7000).CopyTo(memory.Span);
                        response.BodyWriter.Advance(7000);
                        await response.BodyWriter.WriteAsync(body.AsMemory(7000));
                        break;
                }

                return Results.Empty;
            }).RequireIdempotencyKey();
        });

        var expected = mode switch
        {
            "advance-unflushed" => string.Concat(Enumerable.Range(0, 50).Select(i => $"line {i};")),
            "mixed" => "stream-1;writer-2;writer-3;stream-4;",
            "writer-completed" => "then completed",
            "json" => null,
            _ => new string('x', 20_000),
        };
        var first = await app.Client.SendAsync(PipelineApp.Post($"/tee/{mode}", "t", json: "{}"));
        var firstBody = await first.Content.ReadAsStringAsync();
        if (expected is not null)
        {
            Assert.Equal(expected, firstBody);
        }
        else
        {
            Assert.Equal(HttpStatusCode.Created, first.StatusCode);
            Assert.StartsWith("{\"id\":\"p-1\"", firstBody, StringComparison.Ordinal);
        }

        var replay = await app.Client.SendAsync(PipelineApp.Post($"/tee/{mode}", "t", json: "{}"));
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.False(replay.Headers.Contains("Idempotent-Body-Omitted"));
        Assert.Equal(first.StatusCode, replay.StatusCode);
        Assert.Equal(firstBody, await replay.Content.ReadAsStringAsync());
        Assert.Equal(first.Content.Headers.ContentType?.ToString(), replay.Content.Headers.ContentType?.ToString());
        Assert.Equal(1, app.CallsTo(mode));
    }
}
