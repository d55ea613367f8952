using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Oncely.Testing;

namespace Oncely.AspNetCore.Tests;

/// <summary>
/// The middleware's spans and metrics through a real pipeline, read with the OpenTelemetry SDK's in-memory exporter (spans)
/// and a listener on the application's own meter factory (measurements).
/// </summary>
public sealed class IdempotencyTelemetryTests : IDisposable
{
    private static readonly ActivitySource Handler = new("Oncely.Tests.Handler");

    private readonly TraceCapture _traces = new(Handler.Name);
    private readonly string _route = "/telemetry-" + Guid.NewGuid().ToString("N")[..8] + "/payments";
    private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private string Operation => "POST " + _route;

    public void Dispose() => _traces.Dispose();

    private Task<PipelineApp> StartAsync(Action<IServiceCollection>? services = null, Action<IdempotencyOptions>? configure = null)
        => PipelineApp.StartAsync(
            (app, p) =>
            {
                PipelineApp.UseCatchAll(app);
                app.UseAuthentication();
                app.UseAuthorization();
                app.UseIdempotency();
                app.MapPost(_route, () =>
                {
                    using (Handler.StartActivity("charge the card"))
                    {
                        return Results.Created("/payments/1", new { call = p.Count("pay") });
                    }
                }).RequireIdempotencyKey();
                app.MapPost(_route + "/throw", IResult () =>
                {
                    p.Count("throw");
                    throw new InvalidOperationException("declined card 4242 4242 4242 4242");
                }).RequireIdempotencyKey();
                app.MapPost(_route + "/slow", async () =>
                {
                    _entered.TrySetResult();
                    await _gate.Task;
                    return Results.Created("/payments/2", new { call = p.Count("slow") });
                }).RequireIdempotencyKey();
                app.MapPost(_route + "/plain", () => Results.Ok(new { call = p.Count("plain") }));
            },
            services,
            configure: configure);

    [Fact]
    public async Task Execute_NewKey_RequestSpanWrapsStoreCallsAndTheHandlersOwnSpan()
    {
        await using var app = await StartAsync();

        using var response = await app.Client.SendAsync(PipelineApp.Post(_route, "key-1"));

        Assert.Equal(System.Net.HttpStatusCode.Created, response.StatusCode);
        var request = Assert.Single(_traces.RequestsOf(Operation));
        Assert.Equal("idempotent " + Operation, request.DisplayName);
        Assert.Equal("executed", request.GetTagItem(IdempotencyDiagnostics.OutcomeTag));
        Assert.Equal(nameof(InMemoryIdempotencyStore), request.GetTagItem(IdempotencyDiagnostics.StoreTag));
        Assert.Equal(["oncely.store.reserve", "charge the card", "oncely.store.complete"], _traces.ChildrenOf(request).Select(c => c.OperationName));
    }

    [Fact]
    public async Task Replay_SameKey_RequestSpanReplayedWithOneReadOfACompletedRecord()
    {
        await using var app = await StartAsync();
        (await app.Client.SendAsync(PipelineApp.Post(_route, "key-1"))).Dispose();

        using var replay = await app.Client.SendAsync(PipelineApp.Post(_route, "key-1"));

        Assert.True(replay.Headers.Contains(IdempotencyOptions.ReplayedHeaderName));
        var request = _traces.RequestsOf(Operation)[1];
        Assert.Equal("replayed", request.GetTagItem(IdempotencyDiagnostics.OutcomeTag));
        var call = Assert.Single(_traces.ChildrenOf(request));
        Assert.Equal("oncely.store.reserve", call.OperationName);
        Assert.Equal("completed", call.GetTagItem(IdempotencyDiagnostics.ReservationTag));
        Assert.Equal(1, app.CallsTo("pay"));
    }

    [Fact]
    public async Task MissingKey_Refused_RequestSpanRejectedWithoutStoreCalls()
    {
        await using var app = await StartAsync();

        using var response = await app.Client.SendAsync(PipelineApp.Post(_route, key: null));

        Assert.Equal(System.Net.HttpStatusCode.BadRequest, response.StatusCode);
        var request = Assert.Single(_traces.RequestsOf(Operation));
        Assert.Equal("rejected", request.GetTagItem(IdempotencyDiagnostics.OutcomeTag));
        Assert.Equal(ActivityStatusCode.Unset, request.Status);
        Assert.Empty(_traces.ChildrenOf(request));
    }

    [Fact]
    public async Task HandlerThrows_RequestSpanReleasedWithErrorTypeButNotTheMessage()
    {
        await using var app = await StartAsync();

        using var response = await app.Client.SendAsync(PipelineApp.Post(_route + "/throw", "key-1"));

        Assert.Equal(System.Net.HttpStatusCode.InternalServerError, response.StatusCode);
        var request = Assert.Single(_traces.RequestsOf(Operation + "/throw"));
        Assert.Equal("released", request.GetTagItem(IdempotencyDiagnostics.OutcomeTag));
        Assert.Equal(typeof(InvalidOperationException).FullName, request.GetTagItem(IdempotencyDiagnostics.ErrorTypeTag));
        Assert.Equal(ActivityStatusCode.Error, request.Status);
        Assert.Empty(request.Events);
        Assert.Equal(["oncely.store.reserve", "oncely.store.release"], _traces.ChildrenOf(request).Select(c => c.OperationName));
    }

    [Fact]
    public async Task StoreDown_503_RequestSpanStoreUnavailableAndStoreSpanFailed()
    {
        await using var app = await StartAsync(services => services.AddSingleton<IIdempotencyStore>(new FaultyStore(new InMemoryIdempotencyStore()) { FailReserve = true }));

        using var response = await app.Client.SendAsync(PipelineApp.Post(_route, "key-1"));

        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var request = Assert.Single(_traces.RequestsOf(Operation));
        Assert.Equal("store_unavailable", request.GetTagItem(IdempotencyDiagnostics.OutcomeTag));
        Assert.Equal(nameof(FaultyStore), request.GetTagItem(IdempotencyDiagnostics.StoreTag));
        Assert.Equal(ActivityStatusCode.Error, request.Status);
        var call = Assert.Single(_traces.ChildrenOf(request));
        Assert.Equal(typeof(IdempotencyStoreUnavailableException).FullName, call.GetTagItem(IdempotencyDiagnostics.ErrorTypeTag));
        Assert.Equal(ActivityStatusCode.Error, call.Status);
        Assert.Equal(0, app.CallsTo("pay"));
    }

    [Fact]
    public async Task StoreTooSlow_503_StoreSpanAndDurationTaggedTimeout()
    {
        await using var app = await StartAsync(
            services => services.AddSingleton<IIdempotencyStore>(new FaultyStore(new InMemoryIdempotencyStore()) { HangReserve = true }),
            o => o.StoreTimeout = TimeSpan.FromMilliseconds(100));
        using var metrics = new MetricCapture(app.Services.GetRequiredService<IMeterFactory>());

        using var response = await app.Client.SendAsync(PipelineApp.Post(_route, "key-1"));

        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var call = Assert.Single(_traces.ChildrenOf(Assert.Single(_traces.RequestsOf(Operation))));
        Assert.Equal("timeout", call.GetTagItem(IdempotencyDiagnostics.ErrorTypeTag));
        var timed = Assert.Single(metrics.Of(IdempotencyDiagnostics.StoreOperationDurationInstrument));
        Assert.Equal("reserve", timed.Tag(IdempotencyDiagnostics.StoreOperationTag));
        Assert.Equal("timeout", timed.Tag(IdempotencyDiagnostics.ErrorTypeTag));
    }

    [Fact]
    public async Task Requests_EachOutcome_CountedAndTimedOnceWithOperation()
    {
        await using var app = await StartAsync();
        using var metrics = new MetricCapture(app.Services.GetRequiredService<IMeterFactory>());

        (await app.Client.SendAsync(PipelineApp.Post(_route, "key-1"))).Dispose();
        (await app.Client.SendAsync(PipelineApp.Post(_route, "key-1"))).Dispose();
        (await app.Client.SendAsync(PipelineApp.Post(_route, "key-1", json: "{\"amount\":999}"))).Dispose();
        (await app.Client.SendAsync(PipelineApp.Post(_route, key: null))).Dispose();
        (await app.Client.SendAsync(PipelineApp.Post(_route + "/plain", "key-1"))).Dispose();

        string[] expected = ["executed", "replayed", "key_reused", "rejected"];
        var counted = metrics.Of(IdempotencyDiagnostics.RequestsInstrument);
        Assert.Equal(expected, counted.Select(m => m.Tag(IdempotencyDiagnostics.OutcomeTag)));
        Assert.All(counted, m => Assert.Equal(Operation, m.Tag(IdempotencyDiagnostics.OperationTag)));
        var timed = metrics.Of(IdempotencyDiagnostics.RequestDurationInstrument);
        Assert.Equal(expected, timed.Select(m => m.Tag(IdempotencyDiagnostics.OutcomeTag)));
        Assert.All(timed, m => Assert.Equal("s", m.Instrument.Unit));
        var stored = metrics.Of(IdempotencyDiagnostics.StoreOperationDurationInstrument).Select(m => m.Tag(IdempotencyDiagnostics.StoreOperationTag));
        // The key reuse is audited: the in-memory store keeps the key-reuse audit too.
        Assert.Equal(["reserve", "complete", "reserve", "reserve", "append_audit"], stored);
    }

    [Fact]
    public async Task Duplicate_WhileRunning_InProgressAndOneActiveExecution()
    {
        await using var app = await StartAsync();
        using var metrics = new MetricCapture(app.Services.GetRequiredService<IMeterFactory>());
        var first = app.Client.SendAsync(PipelineApp.Post(_route + "/slow", "key-1"));
        await _entered.Task;

        using (var duplicate = await app.Client.SendAsync(PipelineApp.Post(_route + "/slow", "key-1")))
        {
            Assert.Equal(System.Net.HttpStatusCode.Conflict, duplicate.StatusCode);
        }

        var activeWhileRunning = metrics.Of(IdempotencyDiagnostics.ActiveExecutionsInstrument).Sum(m => m.Value);
        _gate.SetResult();
        (await first).Dispose();

        Assert.Equal(1, activeWhileRunning);
        Assert.Equal(0, metrics.Of(IdempotencyDiagnostics.ActiveExecutionsInstrument).Sum(m => m.Value));
        Assert.Equal(["in_progress", "executed"], metrics.Of(IdempotencyDiagnostics.RequestsInstrument).Select(m => m.Tag(IdempotencyDiagnostics.OutcomeTag)));
        var spans = _traces.RequestsOf(Operation + "/slow");
        Assert.Equal(["executed", "in_progress"], spans.Select(s => s.GetTagItem(IdempotencyDiagnostics.OutcomeTag)));
    }

    [Fact]
    public async Task NonIdempotentEndpoint_NoSpanAndNoMeasurement()
    {
        await using var app = await StartAsync();
        using var metrics = new MetricCapture(app.Services.GetRequiredService<IMeterFactory>());

        using var response = await app.Client.SendAsync(PipelineApp.Post(_route + "/plain", "key-1"));

        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Empty(_traces.TracesOf(Operation + "/plain"));
        Assert.Empty(metrics.Of(IdempotencyDiagnostics.RequestsInstrument));
        Assert.Empty(metrics.Of(IdempotencyDiagnostics.StoreOperationDurationInstrument));
    }

    [Fact]
    public async Task AnyRequest_NoSpanCarriesTheKeyTheTenantOrThePayload()
    {
        await using var app = await StartAsync();
        const string key = "secret-key-of-alice";
        (await app.Client.SendAsync(PipelineApp.Post(_route, key, json: "{\"amount\":1,\"note\":\"payload-marker-xyz\"}"))).Dispose();
        (await app.Client.SendAsync(PipelineApp.Post(_route, key, json: "{\"amount\":1,\"note\":\"payload-marker-xyz\"}"))).Dispose();
        (await app.Client.SendAsync(PipelineApp.Post(_route, key, json: "{\"amount\":2,\"note\":\"payload-marker-xyz\"}"))).Dispose();

        var spans = _traces.TracesOf(Operation);
        Assert.Equal(3, spans.Count(s => s.OperationName == IdempotencyDiagnostics.RequestActivityName));
        foreach (var span in spans)
        {
            foreach (var (name, value) in span.TagObjects)
            {
                var text = Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? string.Empty;
                Assert.False(text.Contains(key, StringComparison.Ordinal) || text.Contains(TestApp.DefaultUser, StringComparison.Ordinal) || text.Contains("payload-marker", StringComparison.Ordinal), $"{span.OperationName} tag {name} = {text}");
            }
        }
    }
}
