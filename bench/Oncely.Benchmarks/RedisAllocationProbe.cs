using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Oncely.StackExchangeRedis;
using Oncely.StackExchangeRedis.Tests.Infrastructure;
using StackExchange.Redis;

namespace Oncely.Benchmarks;

/// <summary>
/// Bytes allocated per execution on a Redis store, layer by layer, against a throw-away local <c>redis-server</c>:
/// StackExchange.Redis alone (one trivial script call, then the store's two scripts as the store sends them), the store's
/// own calls (reserve, complete), and the engine's whole execution, beside the in-memory engine. Allocation counts are
/// deterministic (the process's <c>GC.GetTotalAllocatedBytes(precise: true)</c>, every thread, over a few thousand
/// sequential executions), so this runs on a busy machine too; it measures no time.
/// </summary>
/// <remarks><c>dotnet run -c Release --project bench/Oncely.Benchmarks -- --redis-allocations</c>.</remarks>
internal static class RedisAllocationProbe
{
    private const int Warmup = 2_000;
    private const int Measured = 10_000;
    private static readonly IdempotentResponse Answer = new(201, [new("Content-Type", "application/json; charset=utf-8")], "{\"id\":\"pay_1\",\"status\":\"succeeded\"}"u8.ToArray());
    private static readonly string Fingerprint = new('f', 64);
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Expiration = TimeSpan.FromHours(24);

    public static async Task<int> RunAsync()
    {
        await using var redis = await RedisServer.StartNewAsync();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddIdempotency().UseStackExchangeRedis(o =>
        {
            o.Configuration = redis.EndPoint;
            o.KeyPrefix = "probe";
        });
        await using var provider = services.BuildServiceProvider();
        var store = provider.GetRequiredService<IIdempotencyStore>();
        await ((IIdempotencyStoreInitializer)store).InitializeAsync(CancellationToken.None);
        var executor = provider.GetRequiredService<IdempotencyExecutor>();
        var memory = new IdempotencyExecutor(new InMemoryIdempotencyStore(), new IdempotencyEngineOptions());
        using var raw = await ConnectionMultiplexer.ConnectAsync(redis.EndPoint);
        var database = raw.GetDatabase();
        var keys = new RedisKeyLayout("raw");
        var run = 0;
        using var caller = new CancellationTokenSource();

        static Func<IdempotencyExecution, CancellationToken, ValueTask<IdempotentResponse>> Operation() => static (_, _) => ValueTask.FromResult(Answer);
        var operation = Operation();

        var rows = new List<(string Name, double Bytes)>
        {
            ("StackExchange.Redis: one EVALSHA of `return 1`", await MeasureAsync(_ => database.ScriptEvaluateAsync("return 1"))),
            ("StackExchange.Redis: one EVALSHA of `return 1`, awaited with WaitAsync(timeout, token)", await MeasureAsync(_ => database.ScriptEvaluateAsync("return 1").WaitAsync(TimeSpan.FromSeconds(5), caller.Token))),
            ("StackExchange.Redis: the store's Reserve + Complete scripts, raw", await MeasureAsync(async i =>
            {
                var id = new IdempotencyRecordId("t", "POST /payments", "raw-" + i.ToString(CultureInfo.InvariantCulture));
                var record = keys.Record(id);
                var reserved = (RedisResult[])(await database.ScriptEvaluateAsync(RedisScripts.Reserve, [record, keys.Fence(id)], [Fingerprint, 30_000, 86_400_000]))!;
                _ = await database.ScriptEvaluateAsync(RedisScripts.Complete, [record], [RedisIdempotencyStore.Granted(reserved)!.Value, 201, "[]", Answer.Body.ToArray(), 0, 86_400_000]);
            })),
            ("store: TryReserveAsync + TryCompleteAsync (no caller token)", await MeasureAsync(async i =>
            {
                var id = new IdempotencyRecordId("s", "POST /payments", (++run).ToString(CultureInfo.InvariantCulture));
                var reserved = await store.TryReserveAsync(id, Fingerprint, Lease, Expiration, CancellationToken.None);
                await store.TryCompleteAsync(id, reserved.Record.FencingToken, Answer, Expiration, CancellationToken.None);
            })),
            ("engine: ExecuteAsync, Redis", await MeasureAsync(async i =>
            {
                var result = await executor.ExecuteAsync(new IdempotencyRecordId("e", "POST /payments", (++run).ToString(CultureInfo.InvariantCulture)), Fingerprint, operation);
                Check(result);
            })),
            ("engine: ExecuteAsync, in-memory", await MeasureAsync(async i =>
            {
                var result = await memory.ExecuteAsync(new IdempotencyRecordId("m", "POST /payments", (++run).ToString(CultureInfo.InvariantCulture)), Fingerprint, operation);
                Check(result);
            })),
        };

        Console.WriteLine("| what | bytes per execution |");
        Console.WriteLine("|---|---|");
        foreach (var (name, bytes) in rows)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {bytes:N0} |"));
        }

        return 0;
    }

    private static void Check(IdempotencyExecutionResult result)
    {
        if (result.Completion != CompletionOutcome.Completed)
        {
            throw new InvalidOperationException($"Not executed and completed: {result.Kind}, {result.Completion}.");
        }
    }

    private static async Task<double> MeasureAsync(Func<int, Task> once)
    {
        for (var i = 0; i < Warmup; i++)
        {
            await once(i);
        }

        GC.Collect();
        var before = GC.GetTotalAllocatedBytes(precise: true);
        for (var i = 0; i < Measured; i++)
        {
            await once(Warmup + i);
        }

        var after = GC.GetTotalAllocatedBytes(precise: true);
        return (after - before) / (double)Measured;
    }
}
