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

    [Benchmark(OperationsPerInvoke = Batch, Description = "engine execute, Redis")]
    public Task EngineRedis() => RunEngineAsync(_redisExecutor);

    [Benchmark(OperationsPerInvoke = Batch, Description = "middleware execute, in-memory")]
    public async Task MiddlewareInMemory()
    {
        var middleware = _rig.NewMiddleware();
        var caller = NextCaller();
        foreach (var key in _rig.Keys)
        {
            await middleware.InvokeAsync(_rig.NewContext(key, caller));
        }
    }

    [Benchmark(OperationsPerInvoke = Batch, Description = "middleware execute, Redis")]
    public async Task MiddlewareRedis()
    {
        var caller = NextCaller();
        foreach (var key in _rig.Keys)
        {
            await _redisMiddleware.InvokeAsync(_rig.NewContext(key, caller));
        }
    }

    private async Task RunEngineAsync(IdempotencyExecutor executor)
    {
        var tenant = "tenant-" + Interlocked.Increment(ref _invocation);
        foreach (var key in _rig.Keys)
        {
            var result = await executor.ExecuteAsync(new IdempotencyRecordId(tenant, "POST /payments", key), Fingerprint, Operation);
            if (result.Completion != CompletionOutcome.Completed)
            {
                throw new InvalidOperationException($"Key {key} was not executed and completed: {result.Kind}, {result.Completion}.");
            }
        }
    }

    private ClaimsPrincipal NextCaller() => new(new ClaimsIdentity(
        [new Claim(ClaimTypes.NameIdentifier, "tenant-" + Interlocked.Increment(ref _invocation))], "bench"));
}
