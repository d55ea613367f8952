namespace Oncely.CrashTests.App;

/// <summary>
/// A test-only fault hook. It is registered in DI only when <c>ONCELY_CRASH_AT</c> is set, so a normal start has none
/// and the handlers' <c>GetService&lt;CrashHook&gt;()</c> returns <see langword="null"/>.
/// </summary>
/// <remarks>
/// At the configured point the request stops for good: the hook announces it on standard error
/// (<see cref="ReachedMarker"/>) and blocks, and the test, once it has read that line, kills the process with SIGKILL.
/// So the kill always lands exactly there, whatever the machine's load: no answer can overtake it, and a request that
/// never gets there is seen as such instead of as a kill that came too late.
/// </remarks>
public sealed class CrashHook(string point)
{
    /// <summary>The environment variable that names the point to die at.</summary>
    public const string Variable = "ONCELY_CRASH_AT";

    /// <summary>The line written to standard error when the point is reached, followed by the point's name.</summary>
    public const string ReachedMarker = "crash hook: reached ";

    /// <summary>
    /// When <paramref name="reached"/> is the configured point: announces it and blocks this request until the process
    /// is killed (no finally blocks, no flushing, no graceful shutdown ever run for it).
    /// </summary>
    public void At(string reached)
    {
        if (string.Equals(point, reached, StringComparison.Ordinal))
        {
            Console.Error.WriteLine($"{ReachedMarker}{reached}; waiting for SIGKILL");
            Console.Error.Flush();
            Thread.Sleep(Timeout.Infinite);
        }
    }
}
