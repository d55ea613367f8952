using BenchmarkDotNet.Attributes;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Oncely.AspNetCore;

namespace Oncely.Benchmarks;

/// <summary>
/// The whole middleware on one request, in process, with no server and no socket: a fresh <see cref="DefaultHttpContext"/>
/// per request carrying a 1 KiB JSON body and a key. The baseline calls the handler directly on the same kind of
/// context, so the difference (time and bytes allocated) is exactly what Oncely adds with the in-memory store. Each
/// invocation runs <see cref="Batch"/> requests against a fresh store, so the store does not grow without bound.
/// </summary>
[MemoryDiagnoser]
public class MiddlewareBenchmarks
{
    private const int Batch = 1024;
    private static readonly System.Security.Claims.ClaimsPrincipal Caller = new(new System.Security.Claims.ClaimsIdentity(
        [new System.Security.Claims.Claim(System.Security.Claims.ClaimTypes.NameIdentifier, "tenant-1")], "bench"));

    private static readonly byte[] ResponseBody = "{\"id\":\"pay_1\",\"status\":\"succeeded\"}"u8.ToArray();

    private readonly RequestDelegate _handler = static context =>
    {
        context.Response.StatusCode = StatusCodes.Status201Created;
        context.Response.ContentType = "application/json; charset=utf-8";
        return context.Response.Body.WriteAsync(ResponseBody).AsTask();
    };

    private ServiceProvider _services = null!;
    private IdempotencyOptions _options = null!;
    private Endpoint _endpoint = null!;
    private string[] _keys = [];
    private byte[] _body = [];
    private IdempotencyMiddleware _replayMiddleware = null!;

    [GlobalSetup]
    public void Setup()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddIdempotency();
        _services = services.BuildServiceProvider();
        _options = _services.GetRequiredService<IOptions<IdempotencyOptions>>().Value;
        _endpoint = new RouteEndpoint(_handler, RoutePatternFactory.Parse("/payments"), 0, new EndpointMetadataCollection(new IdempotentAttribute()), "POST /payments");
        _keys = [.. Enumerable.Range(0, Batch).Select(_ => Guid.NewGuid().ToString())];
        _body = Payloads.Json(1024);

        _replayMiddleware = NewMiddleware();
        _replayMiddleware.InvokeAsync(NewContext(_keys[0])).GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup() => _services.Dispose();

    [Benchmark(Baseline = true, OperationsPerInvoke = Batch, Description = "handler only (no Oncely)")]
    public async Task Handler()
    {
        foreach (var key in _keys)
        {
            await _handler(NewContext(key));
        }
    }

    [Benchmark(OperationsPerInvoke = Batch, Description = "middleware execute (new key)")]
    public async Task Execute()
    {
        var middleware = NewMiddleware();
        foreach (var key in _keys)
        {
            await middleware.InvokeAsync(NewContext(key));
        }
    }

    [Benchmark(OperationsPerInvoke = Batch, Description = "middleware replay (completed key)")]
    public async Task Replay()
    {
        for (var i = 0; i < Batch; i++)
        {
            await _replayMiddleware.InvokeAsync(NewContext(_keys[0]));
        }
    }

    private IdempotencyMiddleware NewMiddleware()
    {
        var executor = new IdempotencyExecutor(new InMemoryIdempotencyStore(), _options, TimeProvider.System, NullLogger<IdempotencyExecutor>.Instance);
        return new IdempotencyMiddleware(
            _handler,
            executor,
            Options.Create(_options),
            _services.GetRequiredService<IdempotencyProblemWriter>(),
            new IdempotencyMetrics(executor),
            new KeyReuseAuditor(executor, TimeProvider.System, NullLogger<KeyReuseAuditor>.Instance),
            NullLogger<IdempotencyMiddleware>.Instance);
    }

    private DefaultHttpContext NewContext(string key)
    {
        var context = new DefaultHttpContext { RequestServices = _services };
        var request = context.Request;
        request.Method = HttpMethods.Post;
        request.Path = "/payments";
        request.ContentType = "application/json";
        request.ContentLength = _body.Length;
        request.Body = new MemoryStream(_body, writable: false);
        request.Headers[IdempotencyOptions.HeaderName] = key;
        context.User = Caller;
        context.SetEndpoint(_endpoint);
        return context;
    }
}
