using System.Diagnostics;

namespace Oncely.LoadTest;

/// <summary>What one cell (one variant, one path, one concurrency) measured.</summary>
internal sealed record CellResult(
    string Variant,
    string Path,
    int Concurrency,
    long Operations,
    double Seconds,
    double PerSecond,
    double P50Milliseconds,
    double P99Milliseconds,
    double AllocatedBytesPerOperation,
    double? StoreCallsPerOperation,
    long TotalOperations,
    long Errors,
    string? FirstError)
{
    /// <summary>Whether the handler ran exactly as often as it should have (filled in by the caller).</summary>
    public string Check { get; init; } = "-";

    public bool CheckPassed { get; init; } = true;
}

/// <summary>
/// Runs <c>concurrency</c> closed-loop workers (each sends its next operation when the previous one answered) through a
/// warm-up, then a measured window. Throughput, latency, allocations and store calls are taken over the window only.
/// </summary>
internal static class LoadRunner
{
    public static async Task<CellResult> RunAsync(
        string variant,
        string path,
        int concurrency,
        TimeSpan warmUp,
        TimeSpan duration,
        Func<long, Task> operation,
        Func<long>? storeCalls = null)
    {
        long sequence = -1;
        long errors = 0;
        string? firstError = null;
        var measuring = 0;
        var stopping = 0;
        var histograms = new LatencyHistogram[concurrency];
        var total = new long[concurrency];

        async Task WorkerAsync(int index)
        {
            await Task.Yield();
            var histogram = histograms[index] = new LatencyHistogram();
            while (Volatile.Read(ref stopping) == 0)
            {
                var seq = Interlocked.Increment(ref sequence);
                var started = Stopwatch.GetTimestamp();
                try
                {
                    await operation(seq);
                }
                catch (Exception ex)
                {
                    Interlocked.Increment(ref errors);
                    Interlocked.CompareExchange(ref firstError, ex.GetType().Name + ": " + ex.Message, null);
                    continue;
                }
                finally
                {
                    total[index]++;
                }

                if (Volatile.Read(ref measuring) == 1 && Volatile.Read(ref stopping) == 0)
                {
                    histogram.RecordTicks(Stopwatch.GetTimestamp() - started);
                }
            }
        }

        var workers = Enumerable.Range(0, concurrency).Select(i => Task.Run(() => WorkerAsync(i))).ToArray();
        await Task.Delay(warmUp);

        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        var callsBefore = storeCalls?.Invoke() ?? 0;
        var clock = Stopwatch.StartNew();
        Volatile.Write(ref measuring, 1);
        await Task.Delay(duration);
        Volatile.Write(ref stopping, 1);
        var seconds = clock.Elapsed.TotalSeconds;
        var allocatedAfter = GC.GetTotalAllocatedBytes(precise: true);
        var callsAfter = storeCalls?.Invoke() ?? 0;
        await Task.WhenAll(workers);

        var merged = new LatencyHistogram();
        foreach (var histogram in histograms)
        {
            merged.Add(histogram);
        }

        var operations = merged.Count;
        return new CellResult(
            variant,
            path,
            concurrency,
            operations,
            seconds,
            operations / seconds,
            merged.QuantileMilliseconds(0.50),
            merged.QuantileMilliseconds(0.99),
            operations == 0 ? double.NaN : (allocatedAfter - allocatedBefore) / (double)operations,
            storeCalls is null || operations == 0 ? null : (callsAfter - callsBefore) / (double)operations,
            total.Sum(),
            Interlocked.Read(ref errors),
            firstError);
    }
}
