using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;

namespace Oncely.Benchmarks;

/// <summary>
/// Micro benchmarks of what Oncely adds to one request. Every class compares against a baseline measured in the same
/// run (the Ratio column), because the machines these run on are shared and absolute numbers drift.
/// </summary>
/// <remarks>
/// <c>dotnet run -c Release --project bench/Oncely.Benchmarks -- --filter '*'</c> runs everything with the default job;
/// add <c>--short</c> for a quick smoke (BenchmarkDotNet's ShortRun: 3 warm-ups, 3 iterations, 1 launch). Every other
/// argument goes to BenchmarkDotNet (<c>--filter</c>, <c>--list flat</c>, <c>--exporters</c>, ...).
/// </remarks>
public static class Program
{
    public static int Main(string[] args)
    {
        var isShort = args.Contains("--short");
        var rest = args.Where(a => a != "--short").ToArray();
        if (rest.Length == 0)
        {
            rest = ["--filter", "*"];
        }

        var config = DefaultConfig.Instance;
        if (isShort)
        {
            config = config.AddJob(Job.ShortRun.WithId("ShortRun"));
        }

        var summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(rest, config);
        return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
    }
}
