using System.Diagnostics;
using System.Globalization;

namespace Oncely.LoadTest;

/// <summary>
/// End-to-end cost of Oncely on a request. This process starts Kestrel on 127.0.0.1 with a trivial payment endpoint in
/// several variants (no Oncely, Oncely with the in-memory, SQLite and PostgreSQL stores); an external load generator,
/// wrk, drives each one, so the client does not share the server's runtime. The raw statements of each SQL store run
/// here too, with no HTTP, as the store's ceiling. Every number is read as a ratio against another taken in the same
/// repetition, because the machine is shared and absolute numbers drift. Run it through <c>bench/run-load.sh</c>.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var isShort = args.Contains("--short");
        var skipPostgres = args.Contains("--skip-postgres");
        var paymentsOnly = args.Contains("--payments-only");
        var skipRedis = args.Contains("--skip-redis");
        var redisOnly = args.Contains("--redis-only");
        var output = ValueOf(args, "--output") ?? (isShort || args.Contains("--no-docs") ? null : Path.Combine(RepositoryRoot(), "docs", "benchmarks.md"));
        var repetitions = int.Parse(ValueOf(args, "--repetitions") ?? (isShort ? "2" : "3"), CultureInfo.InvariantCulture);
        var concurrencies = (ValueOf(args, "--concurrency") ?? "1,16,64").Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToList();
        var timing = isShort ? new Timing(WarmUpSeconds: 1, MeasuredSeconds: 1) : new Timing(WarmUpSeconds: 2, MeasuredSeconds: 5);
        var command = string.Join(' ', new[] { "bash bench/run-load.sh" }.Concat(args));
        var wrkVersion = Wrk.Version();
        if (wrkVersion == "not installed")
        {
            await Console.Error.WriteLineAsync("wrk is not installed: run the load test through bench/run-load.sh, which installs it.");
            return 2;
        }

        // Microsoft.Data.Sqlite completes its async calls synchronously, so a SQLite request holds a pool thread while the
        // statement runs. A raised minimum keeps thread injection from distorting the first seconds of a 64-way cell;
        // it applies to every variant (and to the raw primitives) alike.
        ThreadPool.SetMinThreads(128, 128);
        var total = Stopwatch.StartNew();
        Console.WriteLine(Invariant($"Oncely load test ({(isShort ? "short" : "full")}: {repetitions} repetitions × c={string.Join('/', concurrencies)}, {timing.WarmUpSeconds} s warm-up + {timing.MeasuredSeconds} s per cell; {wrkVersion})"));

        var results = new List<CellResult>();
        await using var plan = await BenchPlan.StartAsync(skipPostgres, paymentsOnly, skipRedis, redisOnly);
        var only = ValueOf(args, "--only");
        if (only is not null)
        {
            // For profiling one path: keep only the cells whose "variant path" contains one of the comma-separated parts.
            var parts = only.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            plan.Cells.RemoveAll(cell => !parts.Any(part => $"{cell.Variant} {cell.Path}".Contains(part, StringComparison.OrdinalIgnoreCase)));
        }

        var machine = Machine.Describe(plan.PostgresVersion, wrkVersion, plan.RedisVersion);
        for (var repetition = 1; repetition <= repetitions; repetition++)
        {
            foreach (var c in concurrencies)
            {
                foreach (var cell in plan.Cells)
                {
                    var result = await cell.MeasureAsync(c, repetition, timing);
                    results.Add(result);
                    Console.WriteLine(Invariant($"  r{repetition} c={c,-3} {result.Variant,-26} {result.Path,-17} {result.PerSecond,9:N0}/s  p50 {Ms(result.P50Milliseconds)}  p99 {Ms(result.P99Milliseconds)}  {result.Check}"));
                }
            }
        }

        var notes = new List<string>();
        if (skipPostgres)
        {
            notes.Add("PostgreSQL was skipped (--skip-postgres): its rows and ratios are missing, the payment path comparison too.");
        }
        else if (!redisOnly)
        {
            notes.AddRange(PaymentPathNotes(results, concurrencies));
        }

        if (redisOnly)
        {
            notes.Add("Only the baseline and the Redis cells were run (--redis-only).");
        }
        else if (skipRedis)
        {
            notes.Add("Redis was skipped (--skip-redis): its rows and ratios are missing.");
        }

        if (paymentsOnly)
        {
            notes.Add("Only the payment path comparison was run (--payments-only).");
        }

        foreach (var note in notes)
        {
            Console.WriteLine(note);
        }

        var example = ("wrk " + string.Join(' ', Wrk.Arguments(new Uri("http://127.0.0.1:5000"), TestServer.Payment, HttpCell.Execute, "KEY-PREFIX-", 0, 16, timing.MeasuredSeconds).Select(Quote)))
            .Replace(Wrk.Script, "bench/Oncely.LoadTest/wrk/payments.lua", StringComparison.Ordinal)
            .Replace(":5000", ":PORT", StringComparison.Ordinal);
        var report = Report.Build(results, concurrencies, repetitions, machine, command, example, timing, notes, isShort);
        Console.WriteLine();
        Console.WriteLine(report);
        if (output is not null)
        {
            Report.WriteInto(output, report);
            Console.WriteLine($"Wrote {output}");
        }

        Console.WriteLine(Invariant($"Total time: {total.Elapsed.TotalSeconds:0} s"));
        return results.All(r => r.CheckPassed) ? 0 : 1;
    }

    // The payment path: one-commit throughput over two-commit throughput, per concurrency, from the execute cells'
    // medians over the repetitions (both measured in every repetition, one right after the other).
    private static IEnumerable<string> PaymentPathNotes(List<CellResult> results, List<int> concurrencies)
    {
        static double? Median(IEnumerable<CellResult> cells)
        {
            var values = cells.Select(c => c.PerSecond).Order().ToList();
            return values.Count == 0 ? null : values.Count % 2 == 1 ? values[values.Count / 2] : (values[(values.Count / 2) - 1] + values[values.Count / 2]) / 2;
        }

        var ratios = new List<string>();
        foreach (var c in concurrencies)
        {
            var one = Median(results.Where(r => r.Variant == BenchPlan.PaymentOneCommit && r.Path == HttpCell.Execute && r.Concurrency == c));
            var two = Median(results.Where(r => r.Variant == BenchPlan.PaymentTwoCommit && r.Path == HttpCell.Execute && r.Concurrency == c));
            if (one is { } o && two is { } t && t > 0)
            {
                ratios.Add(Invariant($"c={c}: {o / t:0.00}× ({o:N0}/s vs {t:N0}/s)"));
            }
        }

        if (ratios.Count > 0)
        {
            yield return "Payment path (ledger transfer on PostgreSQL with default durability), one commit over two commits, execute throughput: "
                + string.Join("; ", ratios) + ". Target: at least 1.3×. Write commits per payment are in each cell's check.";
        }
    }

    private static string Ms(double? milliseconds) => milliseconds is { } ms ? Invariant($"{ms,8:0.000} ms") : "       - ms";

    private static string Quote(string argument) => argument.Any(ch => char.IsWhiteSpace(ch) || ch is '"' or '{' or '}' or '\'') ? "'" + argument + "'" : argument;

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private static string? ValueOf(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(Directory.GetCurrentDirectory()); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Oncely.slnx")))
            {
                return directory.FullName;
            }
        }

        return Directory.GetCurrentDirectory();
    }
}
