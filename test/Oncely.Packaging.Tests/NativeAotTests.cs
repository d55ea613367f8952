using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace Oncely.Packaging.Tests;

/// <summary>
/// A small minimal API on Oncely.AspNetCore and Oncely.Sqlite from the packed packages, published with
/// <c>PublishAot=true</c> (clang and zlib1g-dev: scripts/ensure-native-aot.sh): the publish reports no trim or AOT
/// warning from Oncely, and the native binary answers the replay, the 409 and the 422 over HTTP. The same app run on
/// the JIT is measured beside it (start-up to "Now listening", resident memory after the calls); the numbers go to
/// the test output and to .artifacts/native-aot.md.
/// </summary>
[Collection(PackagesCollection.Name)]
public sealed partial class NativeAotTests(PackedFeed feed, ITestOutputHelper output)
{
    private static readonly TimeSpan PublishTimeout = TimeSpan.FromMinutes(15);

    [Fact]
    public async Task NativeAotApp_FromPackedPackages_PublishesWithoutWarningsAndAnswersReplay409And422()
    {
        var directory = feed.NewDirectory("aot-app");
        var sources = Path.Combine(AppContext.BaseDirectory, "Apps", "AotApi");
        await File.WriteAllTextAsync(Path.Combine(directory, "AotApi.csproj"), (await File.ReadAllTextAsync(Path.Combine(sources, "AotApi.csproj.txt"))).Replace("ONCELY_VERSION", feed.Version, StringComparison.Ordinal));
        File.Copy(Path.Combine(sources, "Program.cs.txt"), Path.Combine(directory, "Program.cs"));

        var watch = Stopwatch.StartNew();
        var publish = await Dotnet.RunAsync(directory, PublishTimeout, "publish", "-c", "Release", "-r", "linux-x64", "-o", Path.Combine(directory, "native"));
        var publishTime = watch.Elapsed;
        var warnings = Warning().Matches(publish).Select(m => m.Value).Distinct().ToList();
        Assert.True(
            warnings.TrueForAll(w => !w.Contains("Oncely", StringComparison.Ordinal)),
            "trim or AOT warnings from Oncely:\n" + string.Join('\n', warnings.Where(w => w.Contains("Oncely", StringComparison.Ordinal))));
        var binary = Path.Combine(directory, "native", "AotApi");
        Assert.True(File.Exists(binary), $"no native binary. Publish output:\n{publish}");
        Assert.False(File.Exists(Path.Combine(directory, "native", "Oncely.dll")), "a native publish has no managed Oncely.dll");

        double nativeMemory;
        TimeSpan nativeStart;
        await using (var app = await RunningApp.StartAsync(binary, directory, []))
        {
            nativeStart = app.StartUp;
            using var client = app.CreateClient();
            await Payments.AssertIdempotentAsync(client, token: null);
            nativeMemory = app.ResidentMemoryMiB;
        }

        // The same program on the JIT, for the numbers next to it.
        var jitOutput = Path.Combine(directory, "jit");
        await Dotnet.RunAsync(directory, PublishTimeout, "build", "-c", "Release", "-o", jitOutput, "-p:PublishAot=false");
        File.Delete(Path.Combine(directory, "aot.db"));
        double jitMemory;
        TimeSpan jitStart;
        await using (var app = await RunningApp.StartAsync(Dotnet.Executable, directory, [Path.Combine(jitOutput, "AotApi.dll")]))
        {
            jitStart = app.StartUp;
            using var client = app.CreateClient();
            await Payments.AssertIdempotentAsync(client, token: null);
            jitMemory = app.ResidentMemoryMiB;
        }

        var size = new FileInfo(binary).Length / 1024.0 / 1024.0;
        var report = string.Create(CultureInfo.InvariantCulture, $"""
            | app | start-up to listening | resident memory after the calls | on disk |
            |---|---|---|---|
            | Native AOT (linux-x64) | {nativeStart.TotalMilliseconds:0} ms | {nativeMemory:0.0} MiB | {size:0.0} MiB binary |
            | JIT (dotnet AotApi.dll) | {jitStart.TotalMilliseconds:0} ms | {jitMemory:0.0} MiB | framework-dependent |

            Native AOT publish took {publishTime.TotalSeconds:0} s; {Environment.ProcessorCount} cores, load average {LoadAverage()} when measured; {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC.
            Publish warnings (none may name Oncely): {(warnings.Count == 0 ? "none" : string.Join("; ", warnings))}
            """);
        output.WriteLine(report);
        var artifacts = Path.Combine(feed.RepositoryRoot, ".artifacts");
        Directory.CreateDirectory(artifacts);
        await File.WriteAllTextAsync(Path.Combine(artifacts, "native-aot.md"), report + "\n");
    }

    private static string LoadAverage() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "unknown";

    [GeneratedRegex(@"warning (IL|SYSLIB)\d+[^\r\n]*")]
    private static partial Regex Warning();
}
