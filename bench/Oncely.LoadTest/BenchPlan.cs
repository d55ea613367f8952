using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Oncely.PostgreSql;
using Oncely.PostgreSql.Tests.Infrastructure;
using Oncely.Sqlite;

namespace Oncely.LoadTest;

/// <summary>
/// Starts every variant of the run and lists its cells, in the order they are measured within one repetition and
/// concurrency: no Oncely (the baseline); Oncely with the in-memory store; Oncely with SQLite, then the raw SQLite
/// primitive; Oncely with PostgreSQL, then the raw PostgreSQL primitives. Servers listen on 127.0.0.1 in this process;
/// wrk drives them from outside.
/// </summary>
internal sealed class BenchPlan : IAsyncDisposable
{
    public const string Baseline = "no Oncely (baseline)";
    public const string InMemory = "Oncely, in-memory";
    public const string Sqlite = "Oncely, SQLite";
    public const string Postgres = "Oncely, PostgreSQL";
    public const string SqliteRaw = "SQLite raw primitive";
    public const string PostgresRaw = "PostgreSQL raw primitive";
    public const string ReserveComplete = "reserve+complete";
    public const string ReadCompleted = "SELECT completed";

    private const int ReplayKeys = 1024;
    private const string ReplayKeyPrefix = "replay-";

    private readonly string _runId = Guid.NewGuid().ToString("N")[..8];
    private readonly string _temp = Path.Combine(Path.GetTempPath(), "oncely-bench-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly List<IAsyncDisposable> _owned = [];
    private PostgresServer? _postgres;

    private BenchPlan() => Directory.CreateDirectory(_temp);

    public List<Cell> Cells { get; } = [];

    public string PostgresVersion { get; private set; } = "not run (--skip-postgres)";

    public static async Task<BenchPlan> StartAsync(bool skipPostgres)
    {
        var plan = new BenchPlan();
        try
        {
            await plan.AddHttpVariantAsync(Baseline, await plan.StartServerAsync(null, inMemory: false), withOncely: false);
            await plan.AddHttpVariantAsync(InMemory, await plan.StartServerAsync(null, inMemory: true), withOncely: true);
            await plan.AddSqliteAsync();
            if (!skipPostgres)
            {
                await plan.AddPostgresAsync();
            }

            // Extension point: the payment path comparison (the sample's payment endpoint on PostgreSQL, one-commit path
            // against two-commit path) would go here: start the sample's app twice, once per path, wrap each in an
            // ILoadTarget (its URL, its request with the Authorization header it needs, its handler-run counter) and add
            // each with AddHttpVariantAsync. The cells, the checks and the report's absolute table need nothing else.
            return plan;
        }
        catch
        {
            await plan.DisposeAsync();
            throw;
        }
    }

    /// <summary>Adds an HTTP variant: an execute cell and, for an Oncely variant, a replay cell over keys completed now.</summary>
    public async Task AddHttpVariantAsync(string name, ILoadTarget target, bool withOncely)
    {
        Cells.Add(new HttpCell(name, HttpCell.Execute, target, _runId));
        if (withOncely)
        {
            await target.PrepopulateAsync(Enumerable.Range(0, ReplayKeys).Select(i => ReplayKeyPrefix + i.ToString(CultureInfo.InvariantCulture)));
            var runs = await target.DrainAndResetAsync();
            if (runs.Runs != ReplayKeys || runs.DistinctKeys != ReplayKeys)
            {
                throw new InvalidOperationException($"{name}: completing {ReplayKeys} keys ran the handler {runs.Runs} times for {runs.DistinctKeys} keys.");
            }

            Cells.Add(new HttpCell(name, HttpCell.Replay, target, _runId, ReplayKeyPrefix, ReplayKeys));
        }
    }

    public async ValueTask DisposeAsync()
    {
        for (var i = _owned.Count - 1; i >= 0; i--)
        {
            await _owned[i].DisposeAsync();
        }

        NpgsqlConnection.ClearAllPools();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        if (_postgres is not null)
        {
            await _postgres.DisposeAsync();
        }

        try
        {
            Directory.Delete(_temp, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private async Task AddSqliteAsync()
    {
        var server = await StartServerAsync(b => b.UseSqlite($"Data Source={Path.Combine(_temp, "http.db")}"), inMemory: false);
        await AddHttpVariantAsync(Sqlite, server, withOncely: true);

        var rawConnection = $"Data Source={Path.Combine(_temp, "raw.db")}";
        await InitializeSchemaAsync(b => b.UseSqlite(rawConnection));
        var raw = new SqliteRawPrimitive(rawConnection, "oncely_records");
        Cells.Add(new RawCell(SqliteRaw, ReserveComplete, _runId, (prefix, seq) => raw.ReserveAndCompleteAsync(prefix + seq.ToString(CultureInfo.InvariantCulture))));
    }

    private async Task AddPostgresAsync()
    {
        _postgres = await PostgresServer.StartNewAsync();
        PostgresVersion = await ServerVersionAsync(_postgres) + " (local throw-away server, fsync off, synchronous_commit off)";
        var httpDb = await _postgres.CreateDatabaseAsync("bench_http");
        var rawDb = await _postgres.CreateDatabaseAsync("bench_raw");
        var postgres = _postgres;
        var server = await StartServerAsync(b => b.UsePostgreSql(o => o.ConnectionString = postgres.ConnectionString(httpDb, 128)), inMemory: false);
        await AddHttpVariantAsync(Postgres, server, withOncely: true);

        await InitializeSchemaAsync(b => b.UsePostgreSql(o => o.ConnectionString = postgres.ConnectionString(rawDb, 4)));
        var source = NpgsqlDataSource.Create(postgres.ConnectionString(rawDb, 128));
        _owned.Add(source);
        var raw = new PostgreSqlRawPrimitive(source, PostgreSqlIdempotencyStoreOptions.DefaultSchema, PostgreSqlIdempotencyStoreOptions.DefaultTableName);
        Cells.Add(new RawCell(PostgresRaw, ReserveComplete, _runId, (prefix, seq) => raw.ReserveAndCompleteAsync(prefix + seq.ToString(CultureInfo.InvariantCulture))));

        // The replay ceiling: a plain SELECT of rows completed beforehand, as many as the HTTP replay cells cycle over.
        await Parallel.ForEachAsync(Enumerable.Range(0, ReplayKeys), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
            await raw.ReserveAndCompleteAsync(ReplayKeyPrefix + i.ToString(CultureInfo.InvariantCulture)));
        Cells.Add(new RawCell(PostgresRaw, ReadCompleted, _runId, (_, seq) => raw.ReadCompletedAsync(ReplayKeyPrefix + (seq % ReplayKeys).ToString(CultureInfo.InvariantCulture))));
    }

    private async Task<TestServer> StartServerAsync(Action<IIdempotencyBuilder>? configureStore, bool inMemory)
    {
        var server = await TestServer.StartAsync(configureStore, inMemory);
        _owned.Add(server);
        return server;
    }

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

    private static async Task<string> ServerVersionAsync(PostgresServer server)
    {
        await using var connection = new NpgsqlConnection(server.ConnectionString("postgres", 1));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SHOW server_version", connection);
        return (string)(await command.ExecuteScalarAsync())!;
    }
}
