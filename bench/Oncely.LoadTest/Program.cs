using Oncely.PostgreSql.Tests.Infrastructure;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Oncely.PostgreSql;
using Oncely.Sqlite;

namespace Oncely.LoadTest;

/// <summary>
/// End-to-end cost of Oncely on a request: one process runs Kestrel with a trivial payment endpoint in several variants
/// (no Oncely, Oncely with the in-memory, SQLite and PostgreSQL stores) and drives them with HttpClient at several
/// concurrencies, plus the raw reserve-and-complete statements of each SQL store as its upper limit. Every number is
/// reported as a ratio against a baseline measured in the same run, interleaved per concurrency, because the
/// machine is shared and absolute numbers drift.
/// </summary>
public static class Program
{
    private const int ReplayKeys = 1024;
    private static readonly int[] Concurrencies = [1, 16, 64];

    public static async Task<int> Main(string[] args)
    {
        var isShort = args.Contains("--short");
        var skipPostgres = args.Contains("--skip-postgres");
        var output = ValueOf(args, "--output") ?? (isShort || args.Contains("--no-docs") ? null : Path.Combine(RepositoryRoot(), "docs", "benchmarks.md"));
        var warmUp = TimeSpan.FromSeconds(isShort ? 0.5 : 2);
        var duration = TimeSpan.FromSeconds(isShort ? 1.5 : 10);
        var command = "dotnet run -c Release --project bench/Oncely.LoadTest" + (isShort ? " -- --short" : string.Empty);

        // Microsoft.Data.Sqlite completes its async calls synchronously, so a SQLite request holds a pool thread while the
        // statement runs. A raised minimum keeps thread injection from distorting the first seconds of a 64-way cell;
        // it applies to every variant (and to the raw primitives) alike.
        ThreadPool.SetMinThreads(128, 128);
        var total = Stopwatch.StartNew();
        Console.WriteLine($"Oncely load test ({(isShort ? "short" : "full")}: {warmUp.TotalSeconds:0.#} s warm-up + {duration.TotalSeconds:0.#} s per cell)");

        var temp = Path.Combine(Path.GetTempPath(), "oncely-bench-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(temp);
        PostgresServer? postgres = null;
        NpgsqlDataSource? rawPgSource = null;
        var servers = new List<TestServer>();
        var results = new List<CellResult>();
        var notes = new List<string>();
        try
        {
            var variants = new List<Variant>();
            var baseline = await TestServer.StartAsync(null, inMemory: false);
            servers.Add(baseline);
            variants.Add(new Variant("no Oncely (baseline)", baseline, null));

            var memory = await TestServer.StartAsync(null, inMemory: true);
            servers.Add(memory);
            variants.Add(new Variant("Oncely, in-memory", memory, null));

            var sqliteFile = Path.Combine(temp, "http.db");
            var sqlite = await TestServer.StartAsync(b => b.UseSqlite($"Data Source={sqliteFile}"), inMemory: false);
            servers.Add(sqlite);
            var rawSqliteFile = Path.Combine(temp, "raw.db");
            await InitializeSchemaAsync(b => b.UseSqlite($"Data Source={rawSqliteFile}"));
            variants.Add(new Variant("Oncely, SQLite", sqlite, new SqliteRawPrimitive($"Data Source={rawSqliteFile}", "oncely_records")));

            string postgresVersion = "not run";
            if (!skipPostgres)
            {
                postgres = await PostgresServer.StartNewAsync();
                postgresVersion = await ServerVersionAsync(postgres);
                var httpDb = await postgres.CreateDatabaseAsync("bench_http");
                var rawDb = await postgres.CreateDatabaseAsync("bench_raw");
                var pg = await TestServer.StartAsync(b => b.UsePostgreSql(o => o.ConnectionString = postgres.ConnectionString(httpDb, 128)), inMemory: false);
                servers.Add(pg);
                await InitializeSchemaAsync(b => b.UsePostgreSql(o => o.ConnectionString = postgres.ConnectionString(rawDb, 4)));
                rawPgSource = NpgsqlDataSource.Create(postgres.ConnectionString(rawDb, 128));
                variants.Add(new Variant("Oncely, PostgreSQL", pg, new PostgreSqlRawPrimitive(rawPgSource, PostgreSqlIdempotencyStoreOptions.DefaultSchema, PostgreSqlIdempotencyStoreOptions.DefaultTableName)));
            }
            else
            {
                notes.Add("PostgreSQL was skipped (--skip-postgres).");
            }

            // The replay path answers from records made beforehand: each key executed exactly once, here.
            foreach (var variant in variants.Where(v => v.Server.Store is not null))
            {
                var before = variant.Server.HandlerRuns;
                await Parallel.ForEachAsync(Enumerable.Range(0, ReplayKeys), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
                    await variant.Server.PostAsync(ReplayKey(i), i, expectReplay: false));
                var ran = variant.Server.HandlerRuns - before;
                if (ran != ReplayKeys)
                {
                    throw new InvalidOperationException($"{variant.Name}: pre-populating {ReplayKeys} keys ran the handler {ran} times.");
                }
            }

            var fingerprintMicroseconds = MeasureFingerprint();
            var run = Guid.NewGuid().ToString("N")[..8];
            foreach (var c in Concurrencies)
            {
                foreach (var variant in variants)
                {
                    var server = variant.Server;
                    var isOncely = server.Store is not null;
                    results.Add(await MeasureHttpAsync(variant.Name, "execute", c, server, warmUp, duration,
                        seq => server.PostAsync($"exec-{run}-c{c}-{seq}", seq % 100_000, expectReplay: isOncely ? false : null), expectedRunsPerOperation: 1));
                    if (!isOncely)
                    {
                        continue;
                    }

                    results.Add(await MeasureHttpAsync(variant.Name, "replay", c, server, warmUp, duration,
                        seq => server.PostAsync(ReplayKey((int)(seq % ReplayKeys)), seq % ReplayKeys, expectReplay: true), expectedRunsPerOperation: 0));
                    if (variant.Raw is { } raw)
                    {
                        var cell = await LoadRunner.RunAsync(raw.Name, "reserve+complete", c, warmUp, duration, seq => raw.ReserveAndCompleteAsync($"raw-{run}-c{c}-{seq}"));
                        results.Add(cell with { StoreCallsPerOperation = 2, Check = cell.Errors == 0 ? "no HTTP" : $"no HTTP; {cell.Errors:N0} errors ({Shorten(cell.FirstError)})" });
                        Print(results[^1]);
                    }
                }
            }

            var machine = DescribeMachine(postgresVersion);
            var report = Report.Build(results, machine, command, fingerprintMicroseconds, warmUp, duration, notes, isShort);
            Console.WriteLine();
            Console.WriteLine(report);
            if (output is not null)
            {
                Report.WriteInto(output, report);
                Console.WriteLine($"Wrote {output}");
            }

            Console.WriteLine($"Total time: {total.Elapsed.TotalSeconds:0} s");
            return results.All(r => r.CheckPassed) ? 0 : 1;
        }
        finally
        {
            foreach (var server in servers)
            {
                await server.DisposeAsync();
            }

            rawPgSource?.Dispose();
            NpgsqlConnection.ClearAllPools();
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            if (postgres is not null)
            {
                await postgres.DisposeAsync();
            }

            try
            {
                Directory.Delete(temp, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static async Task<CellResult> MeasureHttpAsync(string variant, string path, int concurrency, TestServer server, TimeSpan warmUp, TimeSpan duration, Func<long, Task> operation, int expectedRunsPerOperation)
    {
        var before = server.HandlerRuns;
        var cell = await LoadRunner.RunAsync(variant, path, concurrency, warmUp, duration, operation, server.Store is { } store ? () => store.Calls : null);
        var ran = server.HandlerRuns - before;
        var succeeded = cell.TotalOperations - cell.Errors;
        var expected = succeeded * expectedRunsPerOperation;
        // The check is about executions: the handler must run exactly once per answered new key, never on a replay.
        // Requests refused fail-closed (503 when the store is unavailable) did not run the handler and are listed apart.
        var passed = ran == expected;
        var refused = cell.Errors == 0 ? string.Empty : $"; {cell.Errors:N0} refused, handler not run ({Shorten(cell.FirstError)})";
        var check = passed
            ? (expectedRunsPerOperation == 0 ? $"0 runs / {succeeded:N0} replays{refused}" : $"{ran:N0} runs = {succeeded:N0} keys{refused}")
            : $"FAILED: {ran:N0} runs for {succeeded:N0} answered{refused}";
        var result = cell with { Check = check, CheckPassed = passed };
        Print(result);
        return result;
    }

    private static void Print(CellResult r) => Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"  c={r.Concurrency,-3} {r.Variant,-26} {r.Path,-17} {r.PerSecond,9:N0}/s  p50 {r.P50Milliseconds,7:0.000} ms  p99 {r.P99Milliseconds,7:0.000} ms  {r.AllocatedBytesPerOperation / 1024,6:0.0} KiB/op  {r.Check}"));

    private static string Shorten(string? error)
    {
        if (error is null)
        {
            return "no message";
        }

        var start = error.IndexOf("answered ", StringComparison.Ordinal);
        var text = start >= 0 ? error[start..] : error;
        return text.Length > 60 ? text[..60] + "…" : text;
    }

    private static string ReplayKey(int i) => "replay-" + i.ToString(CultureInfo.InvariantCulture);

    private static async Task InitializeSchemaAsync(Action<IIdempotencyBuilder> choose)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        choose(services.AddIdempotency());
        await using var provider = services.BuildServiceProvider();
        if (provider.GetRequiredService<IIdempotencyStore>() is IIdempotencyStoreInitializer initializer)
        {
            await initializer.InitializeAsync(CancellationToken.None);
        }
    }

    /// <summary>A quick in-run check of the fingerprint of a 1 KiB JSON body, in µs (BenchmarkDotNet's number is the authoritative one).</summary>
    private static double MeasureFingerprint()
    {
        var body = Encoding.UTF8.GetBytes(JsonOfSize(1024));
        var input = new FingerprintInput("POST", "/payments") { ContentType = "application/json", Body = body };
        for (var i = 0; i < 5_000; i++)
        {
            RequestFingerprint.Compute(input);
        }

        var best = double.MaxValue;
        for (var round = 0; round < 5; round++)
        {
            const int N = 5_000;
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < N; i++)
            {
                RequestFingerprint.Compute(input);
            }

            best = Math.Min(best, clock.Elapsed.TotalMicroseconds / N);
        }

        return best;
    }

    internal static string JsonOfSize(int size)
    {
        var builder = new StringBuilder("{\"payments\":[");
        for (var i = 0; ; i++)
        {
            var item = string.Create(CultureInfo.InvariantCulture, $"{{\"currency\":\"EUR\",\"amount\":{1000 + i}.50,\"fee\":1e2,\"reference\":\"order-{i:D6}\",\"customer\":{{\"id\":\"cus_{i:x8}\",\"country\":\"NL\"}},\"capture\":true}}");
            if (builder.Length + item.Length + 3 > size && i > 0)
            {
                break;
            }

            builder.Append(i > 0 ? "," : string.Empty).Append(item);
        }

        return builder.Append("]}").ToString();
    }

    private static string DescribeMachine(string postgresVersion)
    {
        static string Read(string path) => File.Exists(path) ? File.ReadAllText(path) : string.Empty;
        var cpu = Read("/proc/cpuinfo").Split('\n').FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";
        var memKb = Read("/proc/meminfo").Split('\n').FirstOrDefault(l => l.StartsWith("MemTotal", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";
        var memory = memKb.EndsWith(" kB", StringComparison.Ordinal) && long.TryParse(memKb[..^3], out var kb) ? $"{kb / 1024.0 / 1024.0:0.0} GiB" : memKb;
        string sqliteVersion;
        using (var connection = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=:memory:"))
        {
            connection.Open();
            sqliteVersion = connection.ServerVersion;
        }

        return string.Join('\n',
            $"- CPU: {cpu}, {Environment.ProcessorCount} logical processors (`nproc`), shared with other workloads",
            $"- Memory: {memory}",
            $"- OS: {System.Runtime.InteropServices.RuntimeInformation.OSDescription} ({System.Runtime.InteropServices.RuntimeInformation.OSArchitecture})",
            $"- .NET: {System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}, server GC: {System.Runtime.GCSettings.IsServerGC}",
            $"- SQLite: {sqliteVersion} (WAL, temp file); PostgreSQL: {postgresVersion} (local, fsync off, started like the tests start theirs)",
            $"- Run at: {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC");
    }

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

    private sealed record Variant(string Name, TestServer Server, IRawPrimitive? Raw);

    private static async Task<string> ServerVersionAsync(PostgresServer server)
    {
        await using var connection = new NpgsqlConnection(server.ConnectionString("postgres", 1));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SHOW server_version", connection);
        return (string)(await command.ExecuteScalarAsync())!;
    }
}
