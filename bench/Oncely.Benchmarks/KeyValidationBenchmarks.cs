using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Primitives;

namespace Oncely.Benchmarks;

/// <summary>
/// Key validation as the middleware does it (both headers' values, the alias absent). The baseline is reading the
/// header's value and checking it is non-empty — what any endpoint that takes a key does anyway.
/// </summary>
[MemoryDiagnoser]
public class KeyValidationBenchmarks
{
    private static readonly StringValues Absent = StringValues.Empty;
    private readonly StringValues _bare = new("0f8fad5b-d9cb-469f-a165-70867728950e");
    private readonly StringValues _quoted = new("\"0f8fad5b-d9cb-469f-a165-70867728950e\"");

    [Benchmark(Baseline = true, Description = "read header, non-empty check")]
    public bool Baseline() => !StringValues.IsNullOrEmpty(_bare) && _bare.Count == 1;

    [Benchmark(Description = "TryParse bare UUID")]
    public IdempotencyKeyError Bare() => IdempotencyKeyParser.TryParse(_bare, Absent, IdempotencyKeyParser.DefaultMaxLength, out _);

    [Benchmark(Description = "TryParse quoted (sf-string) UUID")]
    public IdempotencyKeyError Quoted() => IdempotencyKeyParser.TryParse(_quoted, Absent, IdempotencyKeyParser.DefaultMaxLength, out _);
}
