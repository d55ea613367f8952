using System.Collections.Concurrent;
using System.Net;
using Xunit.Abstractions;

namespace Oncely.Storage.Specification;

/// <summary>
/// A store outage under live HTTP traffic: the server is stopped and started again while clients keep charging. Fails
/// closed while it is down (503, no handler runs), recovers after, and no key is ever charged twice. Derived per store
/// with a server of its own, so a shared one keeps serving the other classes.
/// </summary>
public abstract class ChargeTrafficOutageSpecification(ITestOutputHelper output)
{
    private const int Workers = 4;
    private const long Amount = 250;
    private static readonly TimeSpan HandlerDelay = TimeSpan.FromMilliseconds(30);
    private static readonly TimeSpan Pace = TimeSpan.FromMilliseconds(20);
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Starts the one app instance on the private server, with a 2-second store command timeout and the default lease
    /// (30 s): far longer than this test, so no record whose completion was lost to the outage is ever taken over, which is
    /// what would run its handler twice (decision-table row 17).
    /// </summary>
    protected abstract Task<ChargesApp> StartAppAsync(string name, TimeSpan handlerDelay);

    /// <summary>Stops the store's server (a fast shutdown, connections cut).</summary>
    protected abstract Task StopServerAsync();

    /// <summary>Starts the store's server again, with its data.</summary>
    protected abstract Task StartServerAsync();

    /// <summary>Counts the charges per key, after the server is back.</summary>
    protected abstract ValueTask<IReadOnlyDictionary<string, long>> ChargesPerKeyAsync();

    /// <summary>
    /// Whether the app's store is connected again by the time <see cref="StartServerAsync"/> returns, so every request
    /// started after it executes. A client that reconnects in the background (StackExchange.Redis) may still refuse a
    /// few with 503 first.
    /// </summary>
    protected virtual bool ConnectedWhenServerStarts => true;

    [Fact]
    public async Task ChargeTraffic_ServerStoppedThenRestarted_FailsClosedThenRecoversWithoutDoubleCharges()
    {
        await using var app = await StartAppAsync("outage-app", HandlerDelay);

        var completedBefore = await app.SendAsync(Key("before"), Amount);
        Assert.True(completedBefore.IsExecution, completedBefore.ToString());

        var traffic = new ConcurrentQueue<ChargesApp.Answer>();
        using var stopTraffic = new CancellationTokenSource();
        var workers = Enumerable.Range(0, Workers).Select(w => Task.Run(async () =>
        {
            for (var n = 0; !stopTraffic.IsCancellationRequested; n++)
            {
                traffic.Enqueue(await app.SendAsync(Key($"traffic-{w}-{n}"), Amount));
                await Task.Delay(Pace);
            }
        })).ToArray();

        try
        {
            await WaitUntilAsync(() => traffic.Count(a => a.IsExecution) >= 20, "traffic executes before the outage");

            // Down.
            var stopRequested = DateTimeOffset.UtcNow;
            await StopServerAsync();
            var stopped = DateTimeOffset.UtcNow;
            await Task.Delay(TimeSpan.FromMilliseconds(300)); // handlers that were running at the stop finish or fail
            var runsWhileDown = app.HandlerRuns;

            var down = new List<ChargesApp.Answer>();
            for (var i = 0; i < 20; i++)
            {
                down.Add(await app.SendAsync(Key($"down-{i}"), Amount));
            }

            var replayWhileDown = await app.SendAsync(completedBefore.Key, Amount);
            await Task.Delay(TimeSpan.FromMilliseconds(500));
            var restarting = DateTimeOffset.UtcNow;

            Assert.All(down, ChargesApp.AssertUnavailable);
            ChargesApp.AssertUnavailable(replayWhileDown);
            var trafficWhileDown = traffic.Where(a => a.Started >= stopped && a.Finished < restarting).ToArray();
            Assert.True(trafficWhileDown.Length >= Workers, $"only {trafficWhileDown.Length} traffic requests ran while the server was down");
            Assert.All(trafficWhileDown, ChargesApp.AssertUnavailable);
            Assert.Equal(runsWhileDown, app.HandlerRuns); // fail closed: no handler ran while the store was down

            // Up again: new keys execute.
            await StartServerAsync();
            var restarted = DateTimeOffset.UtcNow;
            await WaitUntilAsync(() => traffic.Count(a => a.Started >= restarted && a.IsExecution) >= 10, "traffic executes after the restart");
            await stopTraffic.CancelAsync();
            await Task.WhenAll(workers);

            var answers = traffic.Append(completedBefore).Concat(down).Append(replayWhileDown).ToArray();
            if (ConnectedWhenServerStarts)
            {
                Assert.DoesNotContain(answers, a => a.Started >= restarted && !a.IsExecution);
            }

            // The charge completed before the outage replays, byte for byte.
            ChargesApp.AssertReplay(completedBefore, await app.SendAsync(completedBefore.Key, Amount));

            // Executions before the stop: each replays, unless the stop cut its completion (then the record stays
            // InProgress for its lease and answers 409; it never runs again within the lease). Only a request that
            // was running on the server when it stopped can be in that state: at most one or two per worker.
            var executedBefore = answers.Where(a => a.IsExecution && a.Started < stopRequested).ToArray();
            var inProgress = 0;
            foreach (var execution in executedBefore)
            {
                var retry = await app.SendAsync(execution.Key, Amount);
                if (retry.Status == HttpStatusCode.Conflict)
                {
                    inProgress++;
                }

                ChargesApp.AssertReplayOrInProgress(execution, retry);
                Assert.True(retry.Replayed || execution.Finished > stopRequested - TimeSpan.FromMilliseconds(250), $"{execution} finished well before the stop but its retry answered {retry}");
            }

            Assert.InRange(inProgress, 0, 2 * Workers);

            // Keys refused while the server was down never reserved anything: retried now, each executes once.
            var refusedWhileDown = answers.Where(a => a.Status == HttpStatusCode.ServiceUnavailable && a.Started >= stopped).Select(a => a.Key).Distinct().ToArray();
            Assert.NotEmpty(refusedWhileDown);
            var retried = await Task.WhenAll(refusedWhileDown.Select(key => app.SendAsync(key, Amount)));
            Assert.All(retried, a => Assert.True(a.IsExecution || a.Key == completedBefore.Key, a.ToString()));

            // Requests caught mid-flight by the stop (503 from a reservation cut off, 500 from a handler whose own
            // effect failed): a retry executes, replays or, if their record outlived the cut, is still in progress.
            var caught = answers
                .Where(a => a.Started < stopped && a.Status is HttpStatusCode.ServiceUnavailable or HttpStatusCode.InternalServerError)
                .Select(a => a.Key).Distinct().ToArray();
            var caughtRetries = await Task.WhenAll(caught.Select(key => app.SendAsync(key, Amount)));
            Assert.All(caughtRetries, a => Assert.True(a.IsExecution || a.Replayed || a.Status == HttpStatusCode.Conflict, a.ToString()));

            // The ledger's own count: no key was charged twice, and every 201 that executed has its one charge.
            var charges = await ChargesPerKeyAsync();
            Assert.All(charges, pair => Assert.True(pair.Value == 1, $"{pair.Key} was charged {pair.Value} times"));
            var executed = answers.Concat(retried).Concat(caughtRetries).Where(a => a.IsExecution).ToArray();
            Assert.Equal(executed.Length, executed.Select(a => a.Key).Distinct().Count());
            Assert.All(executed, a => Assert.Equal(1, charges.GetValueOrDefault(a.Key)));

            output.WriteLine($"traffic: {traffic.Count} requests, {string.Join(", ", traffic.GroupBy(a => (int)a.Status).OrderBy(g => g.Key).Select(g => $"{g.Key}: {g.Count()}"))}");
            output.WriteLine($"while down: {trafficWhileDown.Length} traffic + {down.Count + 1} explicit requests, all 503; handler runs stayed at {runsWhileDown}");
            output.WriteLine($"executed before the stop: {executedBefore.Length}, of which {inProgress} still in progress after the restart; caught by the stop: {caught.Length}; refused while down then executed: {refusedWhileDown.Length}");
            output.WriteLine($"charges: {charges.Count} keys, {charges.Values.Sum()} charges; stop took {stopped - stopRequested}, restart took {restarted - restarting}; "
                + $"recovered {(traffic.Where(a => a.Started >= restarted && a.IsExecution).Min(a => a.Started) - restarted).TotalMilliseconds:F0} ms after the restart");
        }
        finally
        {
            await stopTraffic.CancelAsync();
            await Task.WhenAll(workers);
        }
    }

    private static string Key(string label) => $"{label}-{Guid.NewGuid():N}";

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTimeOffset.UtcNow + Patience;
        while (!condition())
        {
            Assert.True(DateTimeOffset.UtcNow < deadline, $"Timed out waiting until {what}.");
            await Task.Delay(TimeSpan.FromMilliseconds(50));
        }
    }
}
