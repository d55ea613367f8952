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
        PostgresTransferServer.PrepareStatements = !args.Contains("--unprepared");
        BenchPlan.DatabaseLatency = TimeSpan.FromMilliseconds(double.Parse(ValueOf(args, "--db-latency-ms") ?? "0", CultureInfo.InvariantCulture));
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
        using var sampler = args.Contains("--alloc-types") ? new AllocationSampler() : null;
        HttpCell.Sampler = sampler;
        var total = Stopwatch.StartNew();
        Console.WriteLine(Invariant($"Oncely load test ({(isShort ? "short" : "full")}: {repetitions} repetitions × c={string.Join('/', concurrencies)}, {timing.WarmUpSeconds} s warm-up + {timing.MeasuredSeconds} s per cell; {wrkVersion})"));

        if (args.Contains("--round-trips-only"))
        {
            Console.WriteLine(RoundTrips.Table(await RoundTrips.MeasureAsync()));
            return 0;
        }

        // Round trips and statements per PostgreSQL payment: counted first, on a server of their own, one payment at a time.
        string? wire = null;
        if (!skipPostgres && !redisOnly)
        {
            wire = RoundTrips.Table(await RoundTrips.MeasureAsync());
            Console.WriteLine(wire);
        }

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

        if (BenchPlan.DatabaseLatency > TimeSpan.Zero)
        {
            notes.Add(FormattableString.Invariant($"The PostgreSQL payment variants reached their database through a proxy that held every client send {BenchPlan.DatabaseLatency.TotalMilliseconds} ms (--db-latency-ms): a network round trip (one thread sleeping with usleep until each send is due)."));
        }

        foreach (var note in notes)
        {
            Console.WriteLine(note);
        }

        var example = ("wrk " + string.Join(' ', Wrk.Arguments(new Uri("http://127.0.0.1:5000"), TestServer.Payment, HttpCell.Execute, "KEY-PREFIX-", 0, 16, timing.MeasuredSeconds).Select(Quote)))
            .Replace(Wrk.Script, "bench/Oncely.LoadTest/wrk/payments.lua", StringComparison.Ordinal)
            .Replace(":5000", ":PORT", StringComparison.Ordinal);
        var report = Report.Build(results, concurrencies, repetitions, machine, command, example, timing, notes, isShort, wire);
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
