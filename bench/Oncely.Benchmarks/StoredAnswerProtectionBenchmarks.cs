using BenchmarkDotNet.Attributes;
using Microsoft.AspNetCore.DataProtection;

namespace Oncely.Benchmarks;

/// <summary>
/// What <c>ProtectStoredAnswers()</c> adds per call: sealing an answer on completion and opening it on a replay, for a
/// small payment answer and a 4 KiB one. The baseline is the copy of the answer every store makes anyway.
/// </summary>
[MemoryDiagnoser]
public class StoredAnswerProtectionBenchmarks
{
    private static readonly IdempotencyRecordId Id = new("tenant-a", "POST /payments", "4f9d2c1e-7a55-4b1f-9a0e-2f6c8d3b1a77");

    private StoredAnswerProtection _protection = null!;
    private IdempotentResponse _answer = null!;
    private IdempotentResponse _sealed = null!;

    [Params(200, 4096)]
    public int BodyBytes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _protection = new StoredAnswerProtection(new EphemeralDataProtectionProvider());
        var body = new byte[BodyBytes];
        Random.Shared.NextBytes(body);
        _answer = new IdempotentResponse(201, [new("Content-Type", "application/json; charset=utf-8"), new("Location", "/payments/pay_1")], body);
        _sealed = _protection.Protect(Id, _answer);
    }

    [Benchmark(Baseline = true, Description = "copy the answer (what a store does)")]
    public IdempotentResponse Copy() => new(_answer.StatusCode, [.. _answer.Headers], _answer.Body.ToArray());

    [Benchmark(Description = "protect (on completion)")]
    public IdempotentResponse Protect() => _protection.Protect(Id, _answer);

    [Benchmark(Description = "unprotect (on replay)")]
    public IdempotentResponse Unprotect()
        => _protection.TryUnprotect(Id, _sealed, out var answer, out _) ? answer : throw new InvalidOperationException("The answer did not open.");
}
