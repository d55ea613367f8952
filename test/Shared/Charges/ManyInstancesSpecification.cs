using System.Net;
using Xunit.Abstractions;

namespace Oncely.Storage.Specification;

/// <summary>
/// Three app instances behind one store, as a load-balanced deployment runs, and a storm of concurrent requests over a
/// few dozen keys, each key's requests spread over all three instances: exactly one charge per key, and every other
/// answer is a faithful replay or a 409. Derived per store; each derived class names its own test and calls
/// <see cref="ChargeStormAsync"/>.
/// </summary>
public abstract class ManyInstancesSpecification(ITestOutputHelper output)
{
    private const int Instances = 3;
    private const int Keys = 30;
    private const int RequestsPerKey = 10;
    private const int WarmUpRequestsPerInstance = 20;
    private static readonly TimeSpan HandlerDelay = TimeSpan.FromMilliseconds(30);

    /// <summary>Where the instances' charges land; the storm counts them there.</summary>
    protected abstract IChargeLedger Ledger { get; }

    /// <summary>Starts one instance, with a connection (pool) of its own, on the shared store and <see cref="Ledger"/>.</summary>
    protected abstract Task<ChargesApp> StartInstanceAsync(string name, TimeSpan handlerDelay);

    /// <summary>Checks where the storm's records live, if the store can say; returns a line for the output.</summary>
    protected virtual Task<string> InspectRecordsAsync(IReadOnlyList<string> keys) => Task.FromResult(string.Empty);

    protected async Task ChargeStormAsync()
    {
        var apps = new List<ChargesApp>();
        try
        {
            for (var i = 0; i < Instances; i++)
            {
                apps.Add(await StartInstanceAsync($"instance-{i}", HandlerDelay));
            }

            // Opens HTTP connections and each instance's store connections first, so the storm measures the race and not
            // the cost of hundreds of handshakes. Warm-up keys are charges like any other; the assertions ignore them.
            await Task.WhenAll(apps.SelectMany(app => Enumerable.Range(0, WarmUpRequestsPerInstance).Select(i => app.SendAsync($"warm-{app.Name}-{i}-{Guid.NewGuid():N}", 1))));
            var runsBefore = apps.Sum(a => a.HandlerRuns);
            var keys = Enumerable.Range(0, Keys).Select(k => $"storm-{k}-{Guid.NewGuid():N}").ToArray();

            // Request n carries key n / 10 and goes to instance n % 3: each key's ten requests are spread over all three.
            var requests = Enumerable.Range(0, Keys * RequestsPerKey)
                .Select(n => (App: apps[n % Instances], Key: keys[n / RequestsPerKey], Amount: 100L + (n / RequestsPerKey)))
                .OrderBy(_ => Random.Shared.Next())
                .ToArray();
            var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var sends = requests.Select(async r =>
            {
                await start.Task;
                return await r.App.SendAsync(r.Key, r.Amount);
            }).ToArray();
            start.SetResult();
            var stopwatch = System.Diagnostics.Stopwatch.StartNew();
            var answers = await Task.WhenAll(sends);
            var stormTime = stopwatch.Elapsed;

            var charges = await Ledger.ChargesPerKeyAsync();
            Assert.Equal(Keys, charges.Keys.Count(k => k.StartsWith("storm-", StringComparison.Ordinal)));
            Assert.All(keys, key => Assert.Equal(1, charges.GetValueOrDefault(key)));
            Assert.Equal(Keys, apps.Sum(a => a.HandlerRuns) - runsBefore);

            var executions = new Dictionary<string, ChargesApp.Answer>(StringComparer.Ordinal);
            foreach (var group in answers.GroupBy(a => a.Key))
            {
                Assert.Equal(RequestsPerKey, group.Count());
                var execution = Assert.Single(group, a => a.IsExecution);
                executions[group.Key] = execution;
                Assert.Equal(group.Key, execution.Charge.Key);
                Assert.Equal(execution.Charge.Id, await Ledger.ChargeIdAsync(group.Key));
                foreach (var answer in group.Where(a => !a.IsExecution))
                {
                    ChargesApp.AssertReplayOrInProgress(execution, answer);
                }
            }

            // After the storm every instance replays every key, byte for byte, whichever instance executed it.
            var after = await Task.WhenAll(
                from app in apps
                from key in keys
                select app.SendAsync(key, executions[key].Charge.Amount));
            Assert.All(after, answer => ChargesApp.AssertReplay(executions[answer.Key], answer));
            Assert.Equal(Keys, apps.Sum(a => a.HandlerRuns) - runsBefore);
            Assert.All((await Ledger.ChargesPerKeyAsync()).Values, count => Assert.Equal(1, count));

            var records = await InspectRecordsAsync(keys);
            output.WriteLine($"storm: {answers.Length} requests in {stormTime.TotalMilliseconds:F0} ms: {answers.Count(a => a.IsExecution)} executions, "
                + $"{answers.Count(a => a.Status == HttpStatusCode.Conflict)} in progress (409), {answers.Count(a => a.Replayed)} replays; "
                + $"executions per instance: {string.Join(", ", executions.Values.GroupBy(e => e.Instance).OrderBy(g => g.Key).Select(g => $"{g.Key} {g.Count()}"))}"
                + (records.Length > 0 ? $"; {records}" : ""));
        }
        finally
        {
            foreach (var app in apps)
            {
                await app.DisposeAsync();
            }
        }
    }
}
