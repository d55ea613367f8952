using BenchmarkDotNet.Attributes;

namespace Oncely.Benchmarks;

/// <summary>
/// The in-memory store's two hot transitions. Each invocation runs <see cref="Batch"/> operations on a fresh store so
/// the dictionary never grows without bound; the baseline is the same loop over a plain locked dictionary insert.
/// </summary>
[MemoryDiagnoser]
public class InMemoryStoreBenchmarks
{
    private const int Batch = 1000;
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Expiration = TimeSpan.FromHours(24);
    private static readonly string Fingerprint = new('a', RequestFingerprint.Length);

    private readonly IdempotentResponse _response = new(201, [new("Content-Type", "application/json; charset=utf-8"), new("Location", "/payments/1")], "{\"id\":\"pay_1\",\"status\":\"succeeded\"}"u8.ToArray());
    private IdempotencyRecordId[] _ids = [];
    private InMemoryIdempotencyStore _completed = null!;

    [GlobalSetup]
    public void Setup()
    {
        _ids = [.. Enumerable.Range(0, Batch).Select(i => new IdempotencyRecordId("anonymous", "POST /payments", Guid.NewGuid().ToString()))];
        _completed = new InMemoryIdempotencyStore();
        var reserved = _completed.TryReserveAsync(_ids[0], Fingerprint, Lease, Expiration, default).AsTask().GetAwaiter().GetResult();
        _completed.TryCompleteAsync(_ids[0], reserved.Record.FencingToken, _response, Expiration, default).AsTask().GetAwaiter().GetResult();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Batch, Description = "locked Dictionary.TryAdd")]
    public int DictionaryInsert()
    {
        var gate = new Lock();
        var map = new Dictionary<IdempotencyRecordId, string>();
        foreach (var id in _ids)
        {
            lock (gate)
            {
                map.TryAdd(id, Fingerprint);
            }
        }

        return map.Count;
    }

    [Benchmark(OperationsPerInvoke = Batch, Description = "reserve + complete (new key)")]
    public async Task<int> ReserveAndComplete()
    {
        var store = new InMemoryIdempotencyStore();
        foreach (var id in _ids)
        {
            var reserved = await store.TryReserveAsync(id, Fingerprint, Lease, Expiration, default);
            await store.TryCompleteAsync(id, reserved.Record.FencingToken, _response, Expiration, default);
        }

        return store.Count;
    }

    [Benchmark(OperationsPerInvoke = Batch, Description = "reserve -> replay (completed key)")]
    public async Task<int> ReserveReplay()
    {
        var replays = 0;
        for (var i = 0; i < Batch; i++)
        {
            var result = await _completed.TryReserveAsync(_ids[0], Fingerprint, Lease, Expiration, default);
            replays += result.Outcome == ReservationOutcome.Completed ? 1 : 0;
        }

        return replays;
    }
}
