using System.Diagnostics;
using System.Diagnostics.Metrics;
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
/// What Oncely's own traces and metrics cost per request: the middleware (in-memory store, 1 KiB JSON body) with nothing
/// listening, and with an <see cref="ActivityListener"/> that samples every <c>Oncely</c> span and a
/// <see cref="MeterListener"/> that takes every <c>Oncely</c> measurement (doing nothing with them, so an exporter's own
/// cost is not counted). Compare the two <c>Listening</c> rows of each method.
/// </summary>
[MemoryDiagnoser]
public class TelemetryBenchmarks
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
    private ActivityListener? _activities;
    private MeterListener? _meters;

    /// <summary>Whether a listener takes Oncely's spans and measurements.</summary>
    [Params(false, true)]
    public bool Listening { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        if (Listening)
        {
            _activities = new ActivityListener
            {
                ShouldListenTo = source => source.Name == IdempotencyDiagnostics.ActivitySourceName,
                Sample = static (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            };
            ActivitySource.AddActivityListener(_activities);
            _meters = new MeterListener
            {
                InstrumentPublished = static (instrument, listener) =>
                {
                    if (instrument.Meter.Name == IdempotencyDiagnostics.MeterName)
                    {
                        listener.EnableMeasurementEvents(instrument);
                    }
                },
            };
            _meters.SetMeasurementEventCallback<long>(static (_, _, _, _) => { });
            _meters.SetMeasurementEventCallback<double>(static (_, _, _, _) => { });
            _meters.Start();
        }

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
    public void Cleanup()
    {
        _activities?.Dispose();
        _meters?.Dispose();
        _services.Dispose();
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
