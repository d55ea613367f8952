using System.IO.Pipelines;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features.Authentication;

namespace Oncely.AspNetCore.Tests;

/// <summary>
/// The bytes Oncely buffered (and fingerprinted) are the bytes a handler reads, whichever way it reads them, on real
/// Kestrel: through <c>Request.BodyReader</c> (JSON binding), through <c>Request.Body</c>, or bound by a minimal API.
/// And an anonymous caller on an endpoint that allows one is served without a user being made up for it.
/// </summary>
public class RequestBodyReadingTests
{
    private sealed record Payment(long Amount);

    private static Task<PipelineApp> StartAsync(List<bool> userMadeUp) => PipelineApp.StartAsync(kestrel: true, pipeline: (web, self) =>
    {
        // Outside Oncely: after the request, was an HttpContext.User made up for this anonymous caller?
        web.Use(async (context, next) =>
        {
            await next(context);
            lock (userMadeUp)
            {
                userMadeUp.Add(context.Features.Get<IHttpAuthenticationFeature>()?.User is not null);
            }
        });
        web.UseIdempotency();
        web.MapPost("/pipe", async (HttpContext context) =>
        {
            self.Count("pipe");
            var reader = context.Request.BodyReader;
            while (true)
            {
                var read = await reader.ReadAsync();
                if (read.IsCompleted)
                {
                    var text = Encoding.UTF8.GetString(read.Buffer);
                    reader.AdvanceTo(read.Buffer.End);
                    return Results.Text("pipe:" + text, statusCode: StatusCodes.Status201Created);
                }

                reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
            }
        }).RequireIdempotencyKey().AllowAnonymousIdempotency();
        web.MapPost("/stream", async (HttpContext context) =>
        {
            self.Count("stream");
            using var reader = new StreamReader(context.Request.Body);
            return Results.Text("stream:" + await reader.ReadToEndAsync(), statusCode: StatusCodes.Status201Created);
        }).RequireIdempotencyKey().AllowAnonymousIdempotency();
        web.MapPost("/bound", (Payment payment) =>
        {
            self.Count("bound");
            return Results.Text("bound:" + payment.Amount, statusCode: StatusCodes.Status201Created);
        }).RequireIdempotencyKey().AllowAnonymousIdempotency();
    });

    [Theory]
    [InlineData("/pipe", "pipe:")]
    [InlineData("/stream", "stream:")]
    public async Task Handler_ReadsTheBufferedBytes_EitherWay_ThenReplayed(string path, string prefix)
    {
        var userMadeUp = new List<bool>();
        await using var app = await StartAsync(userMadeUp);
        // Larger than one read of the server's pipe, with multi-byte characters.
        var json = "{\"amount\":100,\"note\":\"" + string.Concat(Enumerable.Repeat("é€x", 3000)) + "\"}";

        for (var attempt = 0; attempt < 2; attempt++)
        {
            using var response = await app.Client.SendAsync(PipelineApp.Post(path, "body-" + path.TrimStart('/'), json, user: null));
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
            Assert.Equal(prefix + json, await response.Content.ReadAsStringAsync());
            Assert.Equal(attempt == 1, response.Headers.Contains(IdempotencyOptions.ReplayedHeaderName));
        }

        Assert.Equal(1, app.CallsTo(path.TrimStart('/')));
        Assert.Equal([false, false], userMadeUp);
    }

    [Fact]
    public async Task MinimalApiBinding_ReadsTheBufferedBytes_AndAnotherPayloadUnderTheKeyIsRefused()
    {
        var userMadeUp = new List<bool>();
        await using var app = await StartAsync(userMadeUp);

        using (var first = await app.Client.SendAsync(PipelineApp.Post("/bound", "bound-1", "{\"amount\":42}", user: null)))
        {
            Assert.Equal(HttpStatusCode.Created, first.StatusCode);
            Assert.Equal("bound:42", await first.Content.ReadAsStringAsync());
        }

        // Same payload, other spelling: a replay. Another amount: refused (row 8), the handler not run again.
        using (var replay = await app.Client.SendAsync(PipelineApp.Post("/bound", "bound-1", "{ \"amount\" : 42.0 }", user: null)))
        {
            Assert.Equal(HttpStatusCode.Created, replay.StatusCode);
            Assert.Equal("bound:42", await replay.Content.ReadAsStringAsync());
            Assert.True(replay.Headers.Contains(IdempotencyOptions.ReplayedHeaderName));
        }

        using (var reused = await app.Client.SendAsync(PipelineApp.Post("/bound", "bound-1", "{\"amount\":43}", user: null)))
        {
            Assert.Equal(HttpStatusCode.UnprocessableEntity, reused.StatusCode);
        }

        using (var second = await app.Client.SendAsync(PipelineApp.Post("/bound", "bound-2", "{\"amount\":7}", user: null)))
        {
            Assert.Equal("bound:7", await second.Content.ReadAsStringAsync());
        }

        Assert.Equal(2, app.CallsTo("bound"));
        Assert.All(userMadeUp, madeUp => Assert.False(madeUp));
    }
}
