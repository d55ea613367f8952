using System.Globalization;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Oncely.PostgreSql;
using Oncely.PostgreSql.Tests.Infrastructure;
using Oncely.Sqlite;
using Oncely.StackExchangeRedis;
using Oncely.StackExchangeRedis.Tests.Infrastructure;
using StackExchange.Redis;

namespace Oncely.LoadTest;

/// <summary>
/// Starts every variant of the run and lists its cells, in the order they are measured within one repetition and
/// concurrency: no Oncely (the baseline); Oncely with the in-memory store, then with its answers protected; Oncely with SQLite, then the raw SQLite
/// primitive; Oncely with PostgreSQL, then the raw PostgreSQL primitives. Servers listen on 127.0.0.1 in this process;
/// wrk drives them from outside.
/// </summary>
internal sealed class BenchPlan : IAsyncDisposable
{
    public const string Baseline = "no Oncely (baseline)";
    public const string InMemory = "Oncely, in-memory";
    public const string InMemoryProtected = "Oncely, in-memory, answers protected";
    public const string Sqlite = "Oncely, SQLite";
    public const string Postgres = "Oncely, PostgreSQL";
    public const string SqliteRaw = "SQLite raw primitive";
    public const string PostgresRaw = "PostgreSQL raw primitive";
    public const string Redis = "Oncely, Redis";
    public const string RedisRaw = "Redis raw primitive";
    public const string ReadScript = "read script";
    public const string ReserveComplete = "reserve+complete";
    public const string ReadCompleted = "SELECT completed";
    public const string PostgresPaymentWithout = "PostgreSQL payment, no Oncely";
    public const string PostgresPaymentTwoCommit = "PostgreSQL payment, two commits";
    public const string PostgresPaymentOneCommit = "PostgreSQL payment, one commit";
    public const string PostgresPaymentOneCommitApart = "PostgreSQL payment, one commit, reservation apart";
    public const string SqlitePaymentWithout = "SQLite payment, no Oncely";
    public const string SqlitePaymentTwoCommit = "SQLite payment, two commits";
    public const string SqlitePaymentOneCommit = "SQLite payment, one commit";

    private const int ReplayKeys = 1024;
    private const string ReplayKeyPrefix = "replay-";

    private readonly string _runId = Guid.NewGuid().ToString("N")[..8];
    private readonly string _temp = Path.Combine(Path.GetTempPath(), "oncely-bench-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly List<IAsyncDisposable> _owned = [];
    private PostgresServer? _postgres;
    private RedisServer? _redis;

    private BenchPlan() => Directory.CreateDirectory(_temp);

    public List<Cell> Cells { get; } = [];

    /// <summary>
    /// <c>--db-latency-ms N</c>: the PostgreSQL payment variants reach their database through a proxy that holds every
    /// client send N ms, so each round trip costs what it costs on a network (0 = straight to the server).
    /// </summary>
    public static TimeSpan DatabaseLatency { get; set; }

    public string PostgresVersion { get; private set; } = "not run (--skip-postgres)";

    public string RedisVersion { get; private set; } = "not run (--skip-redis)";

    public static async Task<BenchPlan> StartAsync(bool skipPostgres, bool paymentsOnly = false, bool skipRedis = false, bool redisOnly = false)
    {
        var plan = new BenchPlan();
        try
        {
            if (redisOnly)
            {
                await plan.AddHttpVariantAsync(Baseline, await plan.StartServerAsync(null, inMemory: false), withOncely: false);
                await plan.AddRedisAsync();
                return plan;
            }

            if (!paymentsOnly)
            {
                await plan.AddHttpVariantAsync(Baseline, await plan.StartServerAsync(null, inMemory: false), withOncely: false);
                await plan.AddHttpVariantAsync(InMemory, await plan.StartServerAsync(null, inMemory: true), withOncely: true);
                // ProtectStoredAnswers(): every answer sealed with Data Protection on completion and opened on replay
                // (an ephemeral key ring: nothing is written to the machine's key folder).
                await plan.AddHttpVariantAsync(InMemoryProtected, await plan.StartServerAsync(
                    b =>
                    {
                        b.Services.AddDataProtection().UseEphemeralDataProtectionProvider();
                        b.ProtectStoredAnswers();
                    },
                    inMemory: true), withOncely: true);
                await plan.AddSqliteAsync();
                if (!skipPostgres)
                {
                    await plan.AddPostgresAsync();
                }

                if (!skipRedis)
                {
                    await plan.AddRedisAsync();
                }
            }

            if (!skipPostgres)
            {
                await plan.AddPostgresPaymentsAsync();
            }

            await plan.AddSqlitePaymentsAsync();
            return plan;
        }
        catch
        {
            await plan.DisposeAsync();
            throw;
        }
    }

    /// <summary>Adds an HTTP variant: an execute cell and, for an Oncely variant, a replay cell over keys completed now.</summary>
    public async Task AddHttpVariantAsync(string name, ILoadTarget target, bool withOncely, bool withReplay = true)
    {
        Cells.Add(new HttpCell(name, HttpCell.Execute, target, _runId));
        if (withOncely && withReplay)
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

        if (_redis is not null)
        {
            await _redis.DisposeAsync();
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

    /// <summary>
    /// Redis: the HTTP variant on its own key prefix, then the raw primitive (the store's scripts through the same client,
    /// on a connection of its own) on another, and the read script on completed records as the replay ceiling. Every
    /// Redis HTTP cell also counts the server's writes per request (a replay must write none).
    /// </summary>
    private async Task AddRedisAsync()
    {
        _redis = await RedisServer.StartNewAsync();
        var redis = _redis;
        RedisVersion = (await redis.RawAsync("INFO server")).Split('\n').FirstOrDefault(l => l.StartsWith("redis_version:", StringComparison.Ordinal))?.Split(':')[1].Trim()
            + " (local throw-away server, no persistence)";
        var server = await StartServerAsync(b => b.UseStackExchangeRedis(o =>
        {
            o.Configuration = redis.EndPoint;
            o.KeyPrefix = "bench-http";
        }), inMemory: false);
        var first = Cells.Count;
        await AddHttpVariantAsync(Redis, server, withOncely: true);
        for (var i = first; i < Cells.Count; i++)
        {
            Cells[i] = new RedisWritesCell((HttpCell)Cells[i], redis);
        }

        var options = ConfigurationOptions.Parse(redis.EndPoint);
        options.AbortOnConnectFail = false;
        options.BacklogPolicy = BacklogPolicy.FailFast;
        var connection = await ConnectionMultiplexer.ConnectAsync(options);
        _owned.Add(connection);
        var raw = new RedisRawPrimitive(connection.GetDatabase(), "bench-raw");
        Cells.Add(new RawCell(RedisRaw, ReserveComplete, _runId, (prefix, seq) => raw.ReserveAndCompleteAsync(prefix + seq.ToString(CultureInfo.InvariantCulture))));
        await Parallel.ForEachAsync(Enumerable.Range(0, ReplayKeys), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
            await raw.ReserveAndCompleteAsync(ReplayKeyPrefix + i.ToString(CultureInfo.InvariantCulture)));
        Cells.Add(new RawCell(RedisRaw, ReadScript, _runId, (_, seq) => raw.ReadCompletedAsync(ReplayKeyPrefix + (seq % ReplayKeys).ToString(CultureInfo.InvariantCulture))));
    }

    /// <summary>
    /// The payment path on PostgreSQL: a ledger-style transfer (<see cref="PostgresTransferServer"/>) on a PostgreSQL
    /// server of its own with PostgreSQL's default durability (every commit flushes its WAL): without Oncely (the same
    /// transaction, the reference), two-commit path, one-commit path, each on its own database of that server,
    /// measured one right after the other in every repetition.
    /// </summary>
    private async Task AddPostgresPaymentsAsync()
    {
        var durable = await PostgresServer.StartNewAsync();
        _owned.Add(durable);
        await durable.RestartWithDefaultDurabilityAsync();
        foreach (var (name, mode, database) in new[]
        {
            (PostgresPaymentWithout, PaymentMode.WithoutOncely, "pay_none"),
            (PostgresPaymentTwoCommit, PaymentMode.TwoCommits, "pay_two"),
            (PostgresPaymentOneCommit, PaymentMode.OneCommit, "pay_one"),
            (PostgresPaymentOneCommitApart, PaymentMode.OneCommitReservationApart, "pay_one_apart"),
        })
        {
            var created = await durable.CreateDatabaseAsync(database);
            var connectionString = durable.ConnectionString(created, 128);
            if (DatabaseLatency > TimeSpan.Zero)
            {
                // Every client send to the database waits this long in a proxy first: a network round trip.
                var proxy = CountingProxy.Start(durable.Port, DatabaseLatency);
                _owned.Add(proxy);
                connectionString = new NpgsqlConnectionStringBuilder(connectionString) { Port = proxy.Port }.ConnectionString;
            }

            await AddPaymentVariantAsync(name, await PostgresTransferServer.StartAsync(connectionString, mode));
        }
    }

    /// <summary>
    /// The payment path on SQLite (<see cref="SqliteTransferServer"/>): the same three variants, each on a database file
    /// of its own in the temp directory, with SQLite's default durability in WAL mode.
    /// </summary>
    private async Task AddSqlitePaymentsAsync()
    {
        foreach (var (name, mode, file) in new[]
        {
            (SqlitePaymentWithout, PaymentMode.WithoutOncely, "pay-none.db"),
            (SqlitePaymentTwoCommit, PaymentMode.TwoCommits, "pay-two.db"),
            (SqlitePaymentOneCommit, PaymentMode.OneCommit, "pay-one.db"),
        })
        {
            await AddPaymentVariantAsync(name, await SqliteTransferServer.StartAsync(Path.Combine(_temp, file), mode));
        }
    }

    private async Task AddPaymentVariantAsync(string name, TransferServer server)
    {
        _owned.Add(server);
        var first = Cells.Count;
        // The reservation-apart variant replays exactly as the one-commit one does: its execute cell is the comparison.
        await AddHttpVariantAsync(name, server, withOncely: server.Mode != PaymentMode.WithoutOncely, withReplay: server.Mode != PaymentMode.OneCommitReservationApart);
        for (var i = first; i < Cells.Count; i++)
        {
            Cells[i] = new PaymentPathCell((HttpCell)Cells[i], server);
        }
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
