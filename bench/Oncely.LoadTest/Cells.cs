using System.Globalization;

namespace Oncely.LoadTest;

/// <summary>Seconds of warm-up and of measurement per cell (wrk takes whole seconds).</summary>
internal sealed record Timing(int WarmUpSeconds, int MeasuredSeconds);

/// <summary>What one cell measured in one repetition at one concurrency.</summary>
internal sealed record CellResult(
    string Variant,
    string Path,
    int Concurrency,
    int Repetition,
    double PerSecond,
    double? P50Milliseconds,
    double? P99Milliseconds,
    double? AllocatedBytesPerOperation,
    double? StoreCallsPerOperation,
    string Check,
    bool CheckPassed);

/// <summary>
/// A server wrk can drive: where it listens, what to send, and the counters that prove every key ran the handler at most
/// once. <see cref="TestServer"/> is the bench's own trivial endpoint; another application (the sample's payment path,
/// for instance) takes part in the run by implementing this and being added with <see cref="BenchPlan.AddHttpVariantAsync"/>.
/// </summary>
internal interface ILoadTarget
{
    Uri BaseAddress { get; }

    /// <summary>The request wrk sends, with a new or a completed key each time.</summary>
    RequestShape Request { get; }

    /// <summary>Calls into the idempotency store so far; <see langword="null"/> when the target has no Oncely.</summary>
    long? StoreCalls { get; }

    /// <summary>Waits until no request is in flight: wrk has exited and the requests it left behind have finished.</summary>
    Task DrainAsync();

    /// <summary>Drains, then returns the handler's runs since the last reset and forgets them.</summary>
    Task<HandlerRuns> DrainAndResetAsync();

    /// <summary>Completes each key once with <see cref="Request"/> (setup for the replay cells, not measured).</summary>
    Task PrepopulateAsync(IEnumerable<string> keys);
}

/// <summary>One row of the run (a variant and a path), measured at every concurrency in every repetition.</summary>
internal abstract class Cell(string variant, string path)
{
    public string Variant { get; } = variant;

    public string Path { get; } = path;

    public abstract Task<CellResult> MeasureAsync(int concurrency, int repetition, Timing timing);
}

/// <summary>
/// An HTTP cell: wrk, outside this process, drives <paramref name="server"/> with a new key per request (<c>execute</c>) or
/// with the completed keys <paramref name="replayKeyPrefix"/>0 … <paramref name="replayKeys"/>−1 in turn (<c>replay</c>).
/// The cell fails, loudly, when an answer was not a 2xx, when a socket failed, or when the handler's runs do not match
/// what wrk saw: in an execute cell no key may run twice and every 2xx must be one run (requests wrk sent but never read
/// an answer to may have run as well); in a replay cell the handler must not run and every 2xx must be a replay.
/// </summary>
internal sealed class HttpCell(string variant, string path, ILoadTarget server, string runId, string replayKeyPrefix = "", int replayKeys = 0) : Cell(variant, path)
{
    public const string Execute = "execute";
    public const string Replay = "replay";

    /// <summary>Set by <c>--alloc-types</c>: each cell's measured run then prints the types it allocated most, per request.</summary>
    public static AllocationSampler? Sampler { get; set; }

    public override async Task<CellResult> MeasureAsync(int concurrency, int repetition, Timing timing)
    {
        var replay = Path == Replay;
        string Prefix(string phase) => replay ? replayKeyPrefix : string.Create(CultureInfo.InvariantCulture, $"x{runId}-r{repetition}-c{concurrency}-{phase}-");

        // Every request the server takes in the measured run is one wrk sent: the warm-up's stragglers have drained, and
        // allocations and store calls are counted until the measured run's stragglers have drained too.
        await server.DrainAndResetAsync();
        var warm = await Wrk.RunAsync(server.BaseAddress, server.Request, Path, Prefix("w"), replayKeys, concurrency, timing.WarmUpSeconds);
        await server.DrainAsync();

        var callsBefore = server.StoreCalls ?? 0;
        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        var cpuBefore = Sampler is null ? TimeSpan.Zero : System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;
        Sampler?.TakeReport(0);
        var run = await Wrk.RunAsync(server.BaseAddress, server.Request, Path, Prefix("m"), replayKeys, concurrency, timing.MeasuredSeconds);
        await server.DrainAsync();
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        if (Sampler is { } sampler)
        {
            // CPU time, not wall time, of this whole process (server, GC, the sampler) per request wrk sent: less sensitive
            // to a busy machine than throughput, though not immune (a shared core's caches are colder).
            var cpu = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
            Console.WriteLine(Invariant($"  {Variant} {Path} c={concurrency}: {allocated / (double)Math.Max(1, run.Sent):N0} B/request (GC.GetTotalAllocatedBytes), {cpu.TotalMicroseconds / Math.Max(1, run.Sent):N1} µs CPU/request (process)"));
            Console.Write(sampler.TakeReport(run.Sent));
        }
        var calls = (server.StoreCalls ?? 0) - callsBefore;
        var runs = await server.DrainAndResetAsync();

        var (check, passed) = Check(replay, runs, warm, run);
        return new CellResult(Variant, Path, concurrency, repetition, run.PerSecond, run.P50Milliseconds, run.P99Milliseconds,
            run.Sent > 0 && allocated >= 0 ? allocated / (double)run.Sent : null,
            server.StoreCalls is null || run.Sent == 0 ? null : calls / (double)run.Sent,
            check, passed);
    }

    private static (string Check, bool Passed) Check(bool replay, HandlerRuns runs, WrkRun warm, WrkRun run)
    {
        var ok = warm.Ok + run.Ok;
        var unread = warm.Sent - warm.Responses + run.Sent - run.Responses;
        var failures = new List<string>();
        if (warm.NonSuccess + run.NonSuccess > 0)
        {
            failures.Add(Invariant($"{warm.NonSuccess + run.NonSuccess:N0} non-2xx answers (first: {Shorten(warm.FirstFailure.Length > 0 ? warm.FirstFailure : run.FirstFailure)})"));
        }

        if (warm.SocketErrors + run.SocketErrors > 0)
        {
            failures.Add(Invariant($"{warm.SocketErrors + run.SocketErrors:N0} socket errors or timeouts"));
        }

        var replayed = warm.Replayed + run.Replayed;
        if (replay)
        {
            if (runs.Runs != 0)
            {
                failures.Add(Invariant($"the handler ran {runs.Runs:N0} times"));
            }

            if (replayed != ok)
            {
                failures.Add(Invariant($"{ok - replayed:N0} 2xx answers were not replays"));
            }
        }
        else
        {
            if (runs.Runs != runs.DistinctKeys)
            {
                failures.Add(Invariant($"{runs.Runs - runs.DistinctKeys:N0} keys ran the handler twice"));
            }

            if (runs.Runs < ok || runs.Runs > ok + unread)
            {
                failures.Add(Invariant($"{runs.Runs:N0} runs for {ok:N0} 2xx answers ({unread:N0} sent but unread)"));
            }

            if (replayed != 0)
            {
                failures.Add(Invariant($"{replayed:N0} answers to new keys were replays"));
            }
        }

        if (failures.Count > 0)
        {
            return ("FAILED: " + string.Join("; ", failures), false);
        }

        return replay
            ? (Invariant($"0 runs / {ok:N0} replays"), true)
            : (Invariant($"{runs.Runs:N0} runs = {runs.DistinctKeys:N0} keys = {ok:N0} 2xx + {runs.Runs - ok:N0} unread"), true);
    }

    private static string Shorten(string text) => text.Length > 120 ? text[..120] + "…" : text;

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// A raw store primitive: the store's statements through the same driver, no HTTP, so it runs in this process with the
/// same number of closed-loop workers as the HTTP cells have connections. <paramref name="operation"/> receives a
/// prefix unique to the cell and the operation's sequence number.
/// </summary>
internal sealed class RawCell(string variant, string path, string runId, Func<string, long, Task> operation) : Cell(variant, path)
{
    public override async Task<CellResult> MeasureAsync(int concurrency, int repetition, Timing timing)
    {
        var prefix = string.Create(CultureInfo.InvariantCulture, $"raw{runId}-r{repetition}-c{concurrency}-");
        var run = await RawRunner.RunAsync(concurrency, TimeSpan.FromSeconds(timing.WarmUpSeconds), TimeSpan.FromSeconds(timing.MeasuredSeconds), seq => operation(prefix, seq));
        var check = run.Errors == 0 ? "no HTTP" : string.Create(CultureInfo.InvariantCulture, $"no HTTP; {run.Errors:N0} errors ({run.FirstError})");
        return new CellResult(Variant, Path, concurrency, repetition, run.PerSecond, null, null, null, null, check, CheckPassed: true);
    }
}
