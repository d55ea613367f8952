using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Oncely.AspNetCore;

namespace Oncely.AspNetCore.Tests;

/// <summary>
/// An application whose pipeline order and endpoints a test chooses, on a real Kestrel server on 127.0.0.1 (for client
/// disconnects and raw framing) or on TestServer. Callers authenticate with <c>Authorization: Test &lt;user&gt;</c>.
/// </summary>
public sealed class PipelineApp : IAsyncDisposable
{
    private readonly WebApplication _app;

    private PipelineApp(WebApplication app, CapturingLoggerProvider logs)
    {
        _app = app;
        Logs = logs;
    }

    public ConcurrentDictionary<string, int> Calls { get; } = new();

    public CapturingLoggerProvider Logs { get; }

    public IIdempotencyStore Store => _app.Services.GetRequiredService<IIdempotencyStore>();

    public IServiceProvider Services => _app.Services;

    public Uri BaseAddress { get; private set; } = null!;

    public HttpClient Client { get; private set; } = null!;

    public int CallsTo(string name) => Calls.TryGetValue(name, out var n) ? n : 0;

    public int Count(string name) => Calls.AddOrUpdate(name, 1, (_, n) => n + 1);

    /// <summary>Starts the app.</summary>
    /// <param name="pipeline">Adds middleware and endpoints; call <c>UseIdempotency()</c> where the test wants it.</param>
    /// <param name="services">Adds services beyond authentication and <c>AddIdempotency()</c>.</param>
    /// <param name="kestrel">Real Kestrel on a loopback port instead of TestServer.</param>
    /// <param name="configure">Changes the idempotency options.</param>
    public static async Task<PipelineApp> StartAsync(
        Action<WebApplication, PipelineApp> pipeline,
        Action<IServiceCollection>? services = null,
        bool kestrel = false,
        Action<IdempotencyOptions>? configure = null,
        Action<WebApplicationBuilder>? builderHook = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        if (kestrel)
        {
            builder.WebHost.UseKestrel().UseUrls("http://127.0.0.1:0");
        }
        else
        {
            builder.WebHost.UseTestServer();
        }

        var logs = new CapturingLoggerProvider();
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(logs);
        builder.Logging.SetMinimumLevel(LogLevel.Debug);
        builder.Services.AddAuthentication(TestAuthHandler.SchemeName).AddScheme<AuthenticationSchemeOptions, TestAuthHandler>(TestAuthHandler.SchemeName, null);
        builder.Services.AddAuthorization();
        builder.Services.AddIdempotency(o => configure?.Invoke(o));
        services?.Invoke(builder.Services);
        builderHook?.Invoke(builder);

        var app = builder.Build();
        var pipelineApp = new PipelineApp(app, logs);
        pipeline(app, pipelineApp);
        await app.StartAsync();
        if (kestrel)
        {
            pipelineApp.BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
            // No draining on dispose: a test that stops reading mid-body really disconnects.
            pipelineApp.Client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = pipelineApp.BaseAddress };
        }
        else
        {
            pipelineApp.Client = app.GetTestClient();
            pipelineApp.BaseAddress = pipelineApp.Client.BaseAddress!;
        }

        return pipelineApp;
    }

    /// <summary>Like <c>UseExceptionHandler</c>: any exception that escapes becomes a bare 500.</summary>
    public static void UseCatchAll(WebApplication app) => app.Use(async (context, next) =>
    {
        try
        {
            await next(context);
        }
        catch (Exception) when (!context.Response.HasStarted)
        {
            context.Response.Clear();
            context.Response.StatusCode = 500;
        }
    });

    public static HttpRequestMessage Post(string path, string? key, string? json = "{\"amount\":100}", string? user = TestApp.DefaultUser, HttpMethod? method = null)
    {
        var request = TestApp.Post(path, key, json, user);
        if (method is not null)
        {
            request.Method = method;
        }

        return request;
    }

    /// <summary>Polls the store until the record is Completed (the server finishes after the client has gone).</summary>
    public async Task<IdempotencyRecord> WaitForCompletedAsync(IdempotencyRecordId id)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            var record = await Store.GetAsync(id, default);
            if (record is { State: IdempotencyRecordState.Completed })
            {
                return record;
            }

            Assert.True(DateTime.UtcNow < deadline, $"record {id} did not complete; it is {record?.State.ToString() ?? "absent"}");
            await Task.Delay(25);
        }
    }

    /// <summary>Sends raw bytes on a fresh connection and returns the status line's code, or 0 when the server closed without answering.</summary>
    public async Task<int> SendRawAsync(string head, byte[] body, bool closeAfterSending)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(BaseAddress.Host, BaseAddress.Port);
        await socket.SendAsync(Encoding.ASCII.GetBytes(head));
        if (body.Length > 0)
        {
            await socket.SendAsync(body);
        }

        if (closeAfterSending)
        {
            socket.Shutdown(SocketShutdown.Send);
        }

        var received = new MemoryStream();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try
        {
            while (!received.ToArray().AsSpan().ContainsAny("\r\n"u8) || received.Length < 12)
            {
                var read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
                if (read == 0)
                {
                    break;
                }

                received.Write(buffer, 0, read);
            }
        }
        catch (SocketException)
        {
            // Reset by the server.
        }

        var text = Encoding.ASCII.GetString(received.ToArray());
        return text.StartsWith("HTTP/1.1 ", StringComparison.Ordinal) ? int.Parse(text.AsSpan(9, 3), System.Globalization.CultureInfo.InvariantCulture) : 0;
    }

    public static string Head(string path, string key, string extraHeaders) =>
        $"POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Test {TestApp.DefaultUser}\r\nIdempotency-Key: {key}\r\nContent-Type: application/json\r\n{extraHeaders}\r\n";

    public static AuthenticationHeaderValue Auth(string user = TestApp.DefaultUser) => new("Test", user);

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.DisposeAsync();
    }
}
