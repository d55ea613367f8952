using System.Security.Claims;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using Oncely.AspNetCore;
using Oncely.StackExchangeRedis;
using Oncely.StackExchangeRedis.Tests.Infrastructure;

namespace Oncely.Benchmarks;

/// <summary>
/// One execution (reserve, run, complete) with the in-memory store against the same with Redis, a throw-away local
/// <c>redis-server</c> started here (the Redis tests' fixture; installed by <c>scripts/ensure-redis.sh</c>): through the
/// engine alone (<see cref="IdempotencyExecutor.ExecuteAsync"/>) and through the whole middleware on a
/// <see cref="Microsoft.AspNetCore.Http.DefaultHttpContext"/>. The allocated column is what the issue 20 target (a Redis
/// execution at most 5 KiB end to end) is read from; StackExchange.Redis parses replies on its own thread, and
/// BenchmarkDotNet counts every thread's allocations. Every invocation uses a tenant of its own, so every key is new.
/// </summary>
[MemoryDiagnoser]
public class ExecutionBenchmarks
{
    private const int Batch = MiddlewareRig.Batch;

    // Redis executions are round trips: fewer per invocation, so one invocation stays short on a busy machine.
    private const int RedisBatch = 128;
    private static readonly IdempotentResponse Answer = new(201, [new("Content-Type", "application/json; charset=utf-8")], "{\"id\":\"pay_1\",\"status\":\"succeeded\"}"u8.ToArray());
    private static readonly Func<IdempotencyExecution, CancellationToken, ValueTask<IdempotentResponse>> Operation = static (_, _) => ValueTask.FromResult(Answer);
    private static readonly string Fingerprint = new('f', 64);

    private MiddlewareRig _rig = null!;
    private RedisServer _redis = null!;
    private ServiceProvider _redisServices = null!;
    private IIdempotencyStore _redisStore = null!;
    private IdempotencyExecutor _memoryExecutor = null!;
    private IdempotencyExecutor _redisExecutor = null!;
    private IdempotencyMiddleware _redisMiddleware = null!;
    private int _invocation;

    [GlobalSetup]
    public void Setup()
    {
        _rig = new MiddlewareRig();
        _redis = RedisServer.StartNewAsync().GetAwaiter().GetResult();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddIdempotency().UseStackExchangeRedis(o =>
        {
            o.Configuration = _redis.EndPoint;
            o.KeyPrefix = "bench";
        });
        _redisServices = services.BuildServiceProvider();
        _redisStore = _redisServices.GetRequiredService<IIdempotencyStore>();
        _redisExecutor = _redisServices.GetRequiredService<IdempotencyExecutor>();
        _memoryExecutor = new IdempotencyExecutor(new InMemoryIdempotencyStore(), new IdempotencyEngineOptions());
        _redisMiddleware = _rig.NewMiddleware(_redisStore);

        // Connected, scripts loaded and the replica mode decided before anything is measured.
        ((IIdempotencyStoreInitializer)_redisStore).InitializeAsync(CancellationToken.None).AsTask().GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _redisServices.Dispose();
        _redis.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _rig.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Batch, Description = "engine execute, in-memory")]
    public Task EngineInMemory() => RunEngineAsync(_memoryExecutor);

    [Benchmark(OperationsPerInvoke = RedisBatch, Description = "engine execute, Redis")]
    public Task EngineRedis() => RunEngineAsync(_redisExecutor, RedisBatch);

    [Benchmark(OperationsPerInvoke = Batch, Description = "middleware execute, in-memory")]
    public async Task MiddlewareInMemory()
    {
        var middleware = _rig.NewMiddleware();
        var caller = NextCaller();
        foreach (var key in _rig.Keys)
        {
            await InvokeAsync(middleware, _rig.NewContext(key, caller));
        }
    }

    [Benchmark(OperationsPerInvoke = RedisBatch, Description = "middleware execute, Redis")]
    public async Task MiddlewareRedis()
    {
        var caller = NextCaller();
        for (var i = 0; i < RedisBatch; i++)
        {
            await InvokeAsync(_redisMiddleware, _rig.NewContext(_rig.Keys[i], caller));
        }
    }

    private async Task RunEngineAsync(IdempotencyExecutor executor, int count = Batch)
    {
        var tenant = "tenant-" + Interlocked.Increment(ref _invocation);
        for (var i = 0; i < count; i++)
        {
            var key = _rig.Keys[i];
            var result = await executor.ExecuteAsync(new IdempotencyRecordId(tenant, "POST /payments", key), Fingerprint, Operation);
            if (result.Completion != CompletionOutcome.Completed)
            {
                throw new InvalidOperationException($"Key {key} was not executed and completed: {result.Kind}, {result.Completion}.");
            }
        }
    }

    // A new key must run the handler (201); anything else (a 503 from an unreachable store) would measure the wrong path.
    private static async Task InvokeAsync(IdempotencyMiddleware middleware, Microsoft.AspNetCore.Http.DefaultHttpContext context)
    {
        await middleware.InvokeAsync(context);
        if (context.Response.StatusCode != Microsoft.AspNetCore.Http.StatusCodes.Status201Created)
        {
            throw new InvalidOperationException($"A new key was answered {context.Response.StatusCode}, not executed.");
        }
    }

    private ClaimsPrincipal NextCaller() => new(new ClaimsIdentity(
        [new Claim(ClaimTypes.NameIdentifier, "tenant-" + Interlocked.Increment(ref _invocation))], "bench"));
}
