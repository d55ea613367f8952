using BenchmarkDotNet.Attributes;

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
    private const int Batch = MiddlewareRig.Batch;
    private MiddlewareRig _rig = null!;

    [GlobalSetup]
    public void Setup() => _rig = new MiddlewareRig();

    [GlobalCleanup]
    public void Cleanup() => _rig.Dispose();

    [Benchmark(Baseline = true, OperationsPerInvoke = Batch, Description = "handler only (no Oncely)")]
    public async Task Handler()
    {
        foreach (var key in _rig.Keys)
        {
            await _rig.Handler(_rig.NewContext(key));
        }
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
