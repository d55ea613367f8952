using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace Oncely.Benchmarks;

/// <summary>
/// Micro benchmarks of what Oncely adds to one request. Every class compares against a baseline measured in the same
/// run (the Ratio column), because the machines these run on are shared and absolute numbers drift.
/// </summary>
/// <remarks>
/// <c>dotnet run -c Release --project bench/Oncely.Benchmarks -- --filter '*'</c> runs everything with the default job;
/// add <c>--short</c> for a quick smoke (BenchmarkDotNet's ShortRun: 3 warm-ups, 3 iterations, 1 launch, in process). Every other
/// argument goes to BenchmarkDotNet (<c>--filter</c>, <c>--list flat</c>, <c>--exporters</c>, ...). <c>--redis-allocations</c>
/// runs <see cref="RedisAllocationProbe"/> instead (bytes per Redis execution, layer by layer; no timing).
/// </remarks>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Contains("--redis-allocations"))
        {
            return RedisAllocationProbe.RunAsync().GetAwaiter().GetResult();
        }

        var isShort = args.Contains("--short");
        var rest = args.Where(a => a != "--short").ToArray();
        if (rest.Length == 0)
        {
            rest = ["--filter", "*"];
        }

        // Shared, busy build machines: BenchmarkDotNet's default 2-minute limit for building the generated project is too
        // tight. The short job runs in process (no separate build at all), which is what a smoke run wants.
        var config = ManualConfig.Create(DefaultConfig.Instance).WithBuildTimeout(TimeSpan.FromMinutes(10));
        if (isShort)
        {
            config = config.AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance).WithId("ShortRun-InProcess"));
        }

        var summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(rest, config);
        return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
    }
}
