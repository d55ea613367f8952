using BenchmarkDotNet.Attributes;
using Oncely.AspNetCore;

namespace Oncely.Benchmarks;

/// <summary>
/// The response tee: writing a body through <see cref="ResponseCaptureStream"/> (which keeps a pooled copy) against
/// writing it to the inner stream directly. The inner stream is a reused <see cref="MemoryStream"/>, so the ratio shows
/// the copy's cost, not the network's.
/// </summary>
[MemoryDiagnoser]
public class ResponseCaptureBenchmarks
{
    private const int ChunkSize = 4096;
    private readonly MemoryStream _inner = new(capacity: 128 * 1024);
    private byte[] _body = [];

    [Params(1024, 65536)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup() => _body = Payloads.Json(Size);

    [Benchmark(Baseline = true, Description = "write to inner stream")]
    public async Task<long> Direct()
    {
        _inner.Position = 0;
        await WriteChunksAsync(_inner, _body);
        return _inner.Position;
    }

    [Benchmark(Description = "write through ResponseCaptureStream")]
    public async Task<int> Captured()
    {
        _inner.Position = 0;
        using var capture = new ResponseCaptureStream(_inner, 1024 * 1024);
        await WriteChunksAsync(capture, _body);
        return capture.Captured.Length;
    }

    // Kestrel's writers hand the body over in chunks of a few KiB; a 1 KiB body is one write.
    private static async ValueTask WriteChunksAsync(Stream stream, byte[] body)
    {
        for (var offset = 0; offset < body.Length; offset += ChunkSize)
        {
            await stream.WriteAsync(body.AsMemory(offset, Math.Min(ChunkSize, body.Length - offset)));
        }
    }
}
