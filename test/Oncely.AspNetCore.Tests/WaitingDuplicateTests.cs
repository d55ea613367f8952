using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

using Oncely.Testing;

namespace Oncely.AspNetCore.Tests;

/// <summary>
/// Row 7 with <c>InProgressWait</c> (issue 17, item 7): a duplicate waits for the first attempt, but only while its client
/// is there. Real Kestrel, a real socket that hangs up, and the real in-memory store behind a counting decorator.
/// </summary>
public sealed class WaitingDuplicateTests
{
    private const string Body = "{\"amount\":100}";

    [Fact]
    public async Task Row07_WaitingDuplicatesClientHangsUp_StopsPollingTheStore_NotAStoreFailure()
    {
        var store = new CountingStore(new InMemoryIdempotencyStore());
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var duplicateOver = new TaskCompletionSource<(int Status, bool Started)>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var app = await PipelineApp.StartAsync(
            kestrel: true,
            configure: o =>
            {
                o.InProgressWait = TimeSpan.FromMinutes(5);
                o.InProgressPollInterval = TimeSpan.FromMilliseconds(20);
            },
            services: s => s.AddIdempotency().UseStore(_ => store),
            pipeline: (web, self) =>
            {
                // Sees when the duplicate's request is over on the server, and what was answered.
                web.Use(async (context, next) =>
                {
                    try
                    {
                        await next(context);
                    }
                    finally
                    {
                        if (context.Request.Headers.ContainsKey("X-Duplicate"))
                        {
                            duplicateOver.TrySetResult((context.Response.StatusCode, context.Response.HasStarted));
                        }
                    }
                });
                web.UseAuthentication();
                web.UseAuthorization();
                web.UseIdempotency();
                web.MapPost("/slow", async () =>
                {
                    var call = self.Count("slow");
                    entered.TrySetResult();
                    await gate.Task;
                    return Results.Created($"/slow/{call}", new { call });
                }).RequireIdempotencyKey();
            });
        var first = app.Client.SendAsync(PipelineApp.Post("/slow", "held", Body));
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(30));

        // The duplicate, sent whole on its own connection: it finds the record InProgress and waits, polling.
        using (var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await socket.ConnectAsync(app.BaseAddress.Host, app.BaseAddress.Port);
            await socket.SendAsync(Encoding.ASCII.GetBytes(PipelineApp.Head("/slow", "held", $"Content-Length: {Body.Length}\r\nX-Duplicate: 1\r\n") + Body));
            await WaitUntilAsync(() => store.ReservationsOf("held") >= 4, () => $"the duplicate to poll the store (reservations so far: {store.ReservationsOf("held")})");

            // The client hangs up.
            socket.Close();
        }

        var atHangUp = store.ReservationsOf("held");
        var stopped = await Task.WhenAny(duplicateOver.Task, Task.Delay(TimeSpan.FromSeconds(20))) == duplicateOver.Task;
        Assert.True(stopped, $"20 s after its client hung up the duplicate was still waiting; it looked at the store {store.ReservationsOf("held") - atHangUp} more times.");
        var duplicate = await duplicateOver.Task;
        var whenItStopped = store.ReservationsOf("held");

        // The first attempt completes; the gone duplicate looks at the store no more, and nothing is released or replayed for it.
        gate.SetResult();
        Assert.Equal(HttpStatusCode.Created, (await first).StatusCode);
        Assert.Equal(IdempotencyRecordState.Completed, (await app.Store.GetAsync(new IdempotencyRecordId(TestApp.DefaultUser, "POST /slow", "held"), default))?.State);
        Assert.Equal(whenItStopped, store.ReservationsOf("held"));
        Assert.Equal(1, app.CallsTo("slow"));

        // Not a store failure: no 503 answered, nothing logged as one.
        Assert.False(duplicate.Started);
        Assert.NotEqual(StatusCodes.Status503ServiceUnavailable, duplicate.Status);
        Assert.DoesNotContain(app.Logs.Entries, e => e.Id.Id == IdempotencyEventIds.StoreUnavailable || e.Level >= LogLevel.Error);
    }

    [Fact]
    public async Task Row07_WaitingDuplicateWhoseClientStays_StillReplaysTheFirstAnswer()
    {
        var store = new CountingStore(new InMemoryIdempotencyStore());
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var app = await PipelineApp.StartAsync(
            kestrel: true,
            configure: o =>
            {
                o.InProgressWait = TimeSpan.FromMinutes(5);
                o.InProgressPollInterval = TimeSpan.FromMilliseconds(20);
            },
            services: s => s.AddIdempotency().UseStore(_ => store),
            pipeline: (web, self) =>
            {
                web.UseAuthentication();
                web.UseAuthorization();
                web.UseIdempotency();
                web.MapPost("/slow", async () =>
                {
                    var call = self.Count("slow");
                    entered.TrySetResult();
                    await gate.Task;
                    return Results.Created($"/slow/{call}", new { call });
                }).RequireIdempotencyKey();
            });
        var first = app.Client.SendAsync(PipelineApp.Post("/slow", "kept", Body));
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var duplicate = app.Client.SendAsync(PipelineApp.Post("/slow", "kept", Body));
        await WaitUntilAsync(() => store.ReservationsOf("kept") >= 3, () => "the duplicate to poll the store");

        gate.SetResult();

        var original = await first;
        var replay = await duplicate;
        Assert.Equal(HttpStatusCode.Created, replay.StatusCode);
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(await original.Content.ReadAsStringAsync(), await replay.Content.ReadAsStringAsync());
        Assert.Equal(1, app.CallsTo("slow"));
    }

    private static async Task WaitUntilAsync(Func<bool> condition, Func<string> what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what()}");
            await Task.Delay(10);
        }
    }

    /// <summary>The real store, counting the reservations asked for each key (a waiting duplicate's polls are reservations).</summary>
    private sealed class CountingStore(IIdempotencyStore inner) : DelegatingIdempotencyStore(inner)
    {
        private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> _reservations = new();

        public int ReservationsOf(string key) => _reservations.TryGetValue(key, out var n) ? n : 0;

        public override ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
        {
            _reservations.AddOrUpdate(id.Key, 1, (_, n) => n + 1);
            return Inner.TryReserveAsync(id, fingerprint, lease, expiration, cancellationToken);
        }
    }
}
