using System.Security.Cryptography;
using System.Text;
using BenchmarkDotNet.Attributes;

namespace Oncely.Benchmarks;

/// <summary>
/// The fingerprint of a JSON body (RFC 8785 canonicalisation + tagged SHA-256 of method, path, content type and body)
/// against a plain SHA-256 of the same bytes: the ratio is what canonicalisation and framing cost over hashing alone.
/// </summary>
[MemoryDiagnoser]
public class FingerprintBenchmarks
{
    private byte[] _body = [];

    /// <summary>The body size in bytes (approximately; the JSON is cut at an element boundary).</summary>
    [Params(1024, 65536)]
    public int Size { get; set; }

    private readonly FingerprintCache _cache = new();

    [GlobalSetup]
    public void Setup()
    {
        _body = Payloads.Json(Size);
        RetryFromCache();
    }

    [Benchmark(Baseline = true, Description = "SHA-256 of the raw bytes")]
    public byte[] RawSha256() => SHA256.HashData(_body);

    [Benchmark(Description = "RequestFingerprint.Compute (JSON)")]
    public string Fingerprint() => RequestFingerprint.Compute(new FingerprintInput("POST", "/payments")
    {
        ContentType = "application/json; charset=utf-8",
        Body = _body,
    });

    [Benchmark(Description = "byte-identical retry (fingerprint cache hit)")]
    public string RetryFromCache() => RequestFingerprint.Compute(
        new FingerprintInput("POST", "/payments")
        {
            ContentType = "application/json; charset=utf-8",
            Body = _body,
        },
        _cache,
        "tenant-a");
}

/// <summary>Request bodies shaped like a payments API's.</summary>
internal static class Payloads
{
    /// <summary>A JSON array of payment objects, about <paramref name="size"/> bytes, with unordered members and mixed number spellings.</summary>
    public static byte[] Json(int size)
    {
        var builder = new StringBuilder("{\"payments\":[");
        var i = 0;
        while (true)
        {
            var item = $"{{\"currency\":\"EUR\",\"amount\":{1000 + i}.50,\"fee\":1e2,\"reference\":\"order-{i:D6}\",\"customer\":{{\"id\":\"cus_{i:x8}\",\"country\":\"NL\"}},\"capture\":true}}";
            if (builder.Length + item.Length + 3 > size && i > 0)
            {
                break;
            }

            if (i > 0)
            {
                builder.Append(',');
            }

            builder.Append(item);
            i++;
        }

        builder.Append("]}");
        return Encoding.UTF8.GetBytes(builder.ToString());
    }
}
