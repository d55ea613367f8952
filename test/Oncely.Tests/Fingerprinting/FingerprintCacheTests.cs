using System.Text;

namespace Oncely.Tests.Fingerprinting;

public class FingerprintCacheTests
{
    private static FingerprintInput Json(string body, string path = "/payments") => new("POST", path)
    {
        ContentType = "application/json",
        Body = Encoding.UTF8.GetBytes(body),
    };

    [Theory]
    [InlineData("""{"b":1,"a":2.50}""")]
    [InlineData("""{"a":1,"a":2}""")]
    [InlineData("""not json""")]
    public void Compute_RepeatedRequest_SameFingerprintAsUncached_SecondOneFromCache(string body)
    {
        var cache = new FingerprintCache();
        var expected = RequestFingerprint.Compute(Json(body));

        var first = RequestFingerprint.Compute(Json(body), cache, "tenant-a");
        var entries = cache.Count;
        var second = RequestFingerprint.Compute(Json(body), cache, "tenant-a");

        Assert.Equal(expected, first);
        Assert.Equal(expected, second);
        Assert.Equal(1, entries);
        Assert.Equal(1, cache.Count);
    }

    [Fact]
    public void Compute_OtherScopeOrOtherSpelling_OwnEntrySameCanonicalFingerprint()
    {
        var cache = new FingerprintCache();

        var a = RequestFingerprint.Compute(Json("""{"amount":100}"""), cache, "tenant-a");
        var b = RequestFingerprint.Compute(Json("""{"amount":100}"""), cache, "tenant-b");
        var respelled = RequestFingerprint.Compute(Json("""{ "amount" : 1e2 }"""), cache, "tenant-a");

        Assert.Equal(a, b);
        Assert.Equal(a, respelled);
        Assert.Equal(3, cache.Count);
    }

    [Fact]
    public void Compute_NonJsonBody_NotCached()
    {
        var cache = new FingerprintCache();

        RequestFingerprint.Compute(new FingerprintInput("POST", "/upload") { ContentType = "text/plain", Body = "x"u8.ToArray() }, cache, "t");

        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void Add_BeyondCapacity_StartsOverAndStaysBounded()
    {
        var cache = new FingerprintCache(capacity: 8);

        for (var i = 0; i < 100; i++)
        {
            RequestFingerprint.Compute(Json($$"""{"amount":{{i}}}"""), cache, "t");
            Assert.InRange(cache.Count, 1, 8);
        }
    }
}
