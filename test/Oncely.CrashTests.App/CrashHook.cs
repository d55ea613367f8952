using System.Diagnostics;

namespace Oncely.CrashTests.App;

/// <summary>
/// A test-only fault hook. It is registered in DI only when <c>ONCELY_CRASH_AT</c> is set, so a normal start has none
/// and the handlers' <c>GetService&lt;CrashHook&gt;()</c> returns <see langword="null"/>.
/// </summary>
public sealed class CrashHook(string point)
{
    /// <summary>The environment variable that names the point to die at.</summary>
    public const string Variable = "ONCELY_CRASH_AT";

    /// <summary>Dies at once with SIGKILL when <paramref name="reached"/> is the configured point: no finally blocks, no flushing, no graceful shutdown.</summary>
    public void At(string reached)
    {
        if (string.Equals(point, reached, StringComparison.Ordinal))
        {
            Console.Error.WriteLine($"crash hook: SIGKILL at {reached}");
            using var self = Process.GetCurrentProcess();
            self.Kill(); // SIGKILL on Unix (Environment.FailFast would run its own abort path instead)
            Thread.Sleep(Timeout.Infinite);
        }
    }
}
