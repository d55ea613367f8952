using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Oncely.AspNetCore;

namespace Oncely.Benchmarks;

/// <summary>
/// The in-process setting of the middleware benchmarks: an idempotent <c>POST /payments</c> endpoint whose handler
/// answers 201 with a small JSON body, <see cref="Batch"/> fresh keys, a 1 KiB JSON request body, and a middleware that
/// has already completed the first key (for replays). Each request gets a fresh <see cref="DefaultHttpContext"/>; no
/// server, no socket.
/// </summary>
internal sealed class MiddlewareRig : IDisposable
{
    public const int Batch = 1024;

    private static readonly System.Security.Claims.ClaimsPrincipal Caller = new(new System.Security.Claims.ClaimsIdentity(
        [new System.Security.Claims.Claim(System.Security.Claims.ClaimTypes.NameIdentifier, "tenant-1")], "bench"));

    private static readonly byte[] ResponseBody = "{\"id\":\"pay_1\",\"status\":\"succeeded\"}"u8.ToArray();

    private readonly ServiceProvider _services;
    private readonly IdempotencyOptions _options;
    private readonly Endpoint _endpoint;
    private readonly byte[] _body = Payloads.Json(1024);

    public MiddlewareRig()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddIdempotency();
        _services = services.BuildServiceProvider();
        _options = _services.GetRequiredService<IOptions<IdempotencyOptions>>().Value;
        _endpoint = new RouteEndpoint(Handler, RoutePatternFactory.Parse("/payments"), 0, new EndpointMetadataCollection(new IdempotentAttribute()), "POST /payments");
        Keys = [.. Enumerable.Range(0, Batch).Select(_ => Guid.NewGuid().ToString())];
        ReplayMiddleware = NewMiddleware();
        ReplayMiddleware.InvokeAsync(NewContext(Keys[0])).GetAwaiter().GetResult();
    }

    /// <summary>The endpoint's handler: 201 with a small JSON body.</summary>
    public RequestDelegate Handler { get; } = static context =>
    {
        context.Response.StatusCode = StatusCodes.Status201Created;
        context.Response.ContentType = "application/json; charset=utf-8";
        return context.Response.Body.WriteAsync(ResponseBody).AsTask();
    };

    /// <summary><see cref="Batch"/> distinct keys; the first is completed in <see cref="ReplayMiddleware"/>'s store.</summary>
    public string[] Keys { get; }

    /// <summary>A middleware whose store holds the first key, completed.</summary>
    public IdempotencyMiddleware ReplayMiddleware { get; }

    /// <summary>A middleware over <paramref name="store"/>, by default a fresh in-memory store.</summary>
    public IdempotencyMiddleware NewMiddleware(IIdempotencyStore? store = null)
    {
        var executor = new IdempotencyExecutor(store ?? new InMemoryIdempotencyStore(), _options, TimeProvider.System, NullLogger<IdempotencyExecutor>.Instance);
        return new IdempotencyMiddleware(
            Handler,
            executor,
            Options.Create(_options),
            _services.GetRequiredService<IdempotencyProblemWriter>(),
            new IdempotencyMetrics(executor),
            new KeyReuseAuditor(new IdempotencyMaintenanceOptions(), NullLogger<KeyReuseAuditor>.Instance),
            NullLogger<IdempotencyMiddleware>.Instance);
    }

    /// <summary>A fresh request to the endpoint with <paramref name="key"/> and the 1 KiB body.</summary>
    public DefaultHttpContext NewContext(string key) => NewContext(key, Caller);

    /// <summary>A fresh request to the endpoint with <paramref name="key"/>, from <paramref name="caller"/> (the tenant).</summary>
    public DefaultHttpContext NewContext(string key, System.Security.Claims.ClaimsPrincipal caller)
    {
        var context = new DefaultHttpContext { RequestServices = _services };
        var request = context.Request;
        request.Method = HttpMethods.Post;
        request.Path = "/payments";
        request.ContentType = "application/json";
        request.ContentLength = _body.Length;
        request.Body = new MemoryStream(_body, writable: false);
        request.Headers[IdempotencyOptions.HeaderName] = key;
        context.User = caller;
        context.SetEndpoint(_endpoint);
        return context;
    }

    public void Dispose() => _services.Dispose();
}
