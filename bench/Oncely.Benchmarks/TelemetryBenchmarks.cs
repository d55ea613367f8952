using System.Diagnostics;
using System.Diagnostics.Metrics;
using BenchmarkDotNet.Attributes;

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
    private const int Batch = MiddlewareRig.Batch;
    private MiddlewareRig _rig = null!;
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

        _rig = new MiddlewareRig();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _activities?.Dispose();
        _meters?.Dispose();
        _rig.Dispose();
    }

    [Benchmark(OperationsPerInvoke = Batch, Description = "middleware execute (new key)")]
    public async Task Execute()
    {
        var middleware = _rig.NewMiddleware();
        foreach (var key in _rig.Keys)
        {
            await middleware.InvokeAsync(_rig.NewContext(key));
        }
    }

    [Benchmark(OperationsPerInvoke = Batch, Description = "middleware replay (completed key)")]
    public async Task Replay()
    {
        for (var i = 0; i < Batch; i++)
        {
            await _rig.ReplayMiddleware.InvokeAsync(_rig.NewContext(_rig.Keys[0]));
        }
    }
}
