using System.Diagnostics;

namespace Oncely.LoadTest;

/// <summary>What one in-process run of a raw store primitive measured over its window.</summary>
internal sealed record RawRun(long Operations, double Seconds, long Errors, string? FirstError)
{
    public double PerSecond => Seconds > 0 ? Operations / Seconds : 0;
}

/// <summary>
/// Runs a raw store primitive (no HTTP, so it stays in this process) with <c>concurrency</c> closed-loop workers: each
/// starts its next operation when the previous one finished. Operations are counted over the window after the warm-up.
/// </summary>
internal static class RawRunner
{
    public static async Task<RawRun> RunAsync(int concurrency, TimeSpan warmUp, TimeSpan duration, Func<long, Task> operation)
    {
        long sequence = -1;
        long completed = 0;
        long errors = 0;
        string? firstError = null;
        var stopping = 0;

        async Task WorkerAsync()
        {
            await Task.Yield();
            while (Volatile.Read(ref stopping) == 0)
            {
                try
                {
                    await operation(Interlocked.Increment(ref sequence));
                    Interlocked.Increment(ref completed);
                }
                catch (Exception ex)
                {
                    Interlocked.Increment(ref errors);
                    Interlocked.CompareExchange(ref firstError, ex.GetType().Name + ": " + ex.Message, null);
                }
            }
        }

        var workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(WorkerAsync)).ToArray();
        await Task.Delay(warmUp);
        var before = Interlocked.Read(ref completed);
        var errorsBefore = Interlocked.Read(ref errors);
        var clock = Stopwatch.StartNew();
        await Task.Delay(duration);
        var operations = Interlocked.Read(ref completed) - before;
        var seconds = clock.Elapsed.TotalSeconds;
        var windowErrors = Interlocked.Read(ref errors) - errorsBefore;
        Volatile.Write(ref stopping, 1);
        await Task.WhenAll(workers);
        return new RawRun(operations, seconds, windowErrors, firstError);
    }
}
