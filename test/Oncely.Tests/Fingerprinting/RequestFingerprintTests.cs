using System.Text;

namespace Oncely.Tests.Fingerprinting;

public class RequestFingerprintTests
{
    private static string Json(string body, string contentType = "application/json", string path = "/payments") =>
        RequestFingerprint.Compute(new FingerprintInput("POST", path) { ContentType = contentType, Body = Encoding.UTF8.GetBytes(body) });

    private static KeyValuePair<string, string?> Pair(string name, string? value) => new(name, value);

    [Theory]
    [InlineData("text/plain; charset=ISO-8859-1 ", "amount=100", "87bd341a8de231ac83310a7bdce225db5eb45f56bb009f9696ea190d68d2f712")]
    [InlineData("application/json; charset=utf-8", "{\"amount\":1,\"amount\":2}", "ead2c29a707ba602abbfa1237fd6817f9f70340465e89e4422a9e902ec253619")]
    [InlineData(null, "", "d18fc1217626260314193bd30ab48d094364a271ecabd7c4b55a360f71fc9b86")]
    public void Compute_RawAndEmptyBodies_MatchPinnedValues(string? contentType, string body, string expected)
    {
        var fingerprint = RequestFingerprint.Compute(new FingerprintInput("PATCH", "/orders/7")
        {
            Headers = [Pair("Accept-Language", "nl")],
            ContentType = contentType,
            Body = Encoding.UTF8.GetBytes(body),
        });

        Assert.Equal(expected, fingerprint);
    }

    [Fact]
    public void Compute_AnyInput_Returns64LowercaseHexCharacters()
    {
        var fingerprint = Json("""{"amount":100}""");

        Assert.Equal(RequestFingerprint.Length, fingerprint.Length);
        Assert.Matches("^[0-9a-f]{64}$", fingerprint);
    }

    // Fingerprints are stored with records: a change to the hashed layout must be deliberate (and versioned).
    [Fact]
    public void Compute_KnownRequest_MatchesPinnedValue()
    {
        var fingerprint = RequestFingerprint.Compute(new FingerprintInput("post", "/accounts/42/payments")
        {
            Query = [Pair("b", "2"), Pair("a", "1")],
            Headers = [Pair("X-Tenant", "acme")],
            ContentType = "application/json; charset=utf-8",
            Body = """{ "currency": "EUR", "amount": 100.00 }"""u8.ToArray(),
        });

        Assert.Equal("5555d5817f0b11d19102d4fe7d51bed09a8faa300a99f956be14f2cb7c678746", fingerprint);
    }

    [Fact]
    public void Compute_SameInput_SameFingerprint()
    {
        Assert.Equal(Json("""{"amount":100}"""), Json("""{"amount":100}"""));
    }

    [Fact]
    public void Compute_MemberOrderWhitespaceAndNumberSpelling_SameFingerprint()
    {
        var expected = Json("""{"amount":100,"currency":"EUR"}""");

        Assert.Equal(expected, Json("""{ "currency" : "EUR" , "amount" : 100.0 }"""));
        Assert.Equal(expected, Json("""{"currency":"EUR","amount":1e2}"""));
        Assert.Equal(expected, Json("""{"currency":"EUR","amount":1E2}"""));
        Assert.Equal(expected, Json("""{"currency":"EUR","amount":100.00}"""));
        Assert.Equal(expected, Json("{\n\t\"amount\": 100,\n\t\"currency\": \"\\u0045UR\"\n}"));
    }

    [Fact]
    public void Compute_DifferentAmount_DifferentFingerprint()
    {
        Assert.NotEqual(Json("""{"amount":100}"""), Json("""{"amount":100.01}"""));
        Assert.NotEqual(Json("""{"amount":100}"""), Json("""{"amount":"100"}"""));
    }

    [Fact]
    public void Compute_AmountsBeyondDoublePrecision_DifferentFingerprints()
    {
        var large = Json("""{"amount":10000000000000000001}""");
        var round = Json("""{"amount":10000000000000000000}""");

        Assert.NotEqual(large, round);
        Assert.NotEqual(Json("""{"amount":0.1000000000000000000001}"""), Json("""{"amount":0.1}"""));
    }

    [Fact]
    public void Compute_LossyNumber_HashesRawBytes()
    {
        // Both are refused by the canonicaliser, so their raw bytes decide: a different spelling differs.
        Assert.NotEqual(Json("""{"amount":10000000000000000001}"""), Json("""{ "amount":10000000000000000001}"""));
    }

    [Fact]
    public void Compute_CaseVariantDuplicateMembersInOtherOrder_DifferentFingerprints()
    {
        // Regression (issue 9.3): ASP.NET Core binds case-insensitively and the last member wins, so these mean 999 and
        // 100. Canonicalising both would sort them to the same bytes and replay one's answer for the other.
        var meansNineHundredNinetyNine = Json("""{"amount":100,"Amount":999}""");
        var meansOneHundred = Json("""{"Amount":999,"amount":100}""");

        Assert.NotEqual(meansNineHundredNinetyNine, meansOneHundred);
    }

    [Fact]
    public void Compute_DistinctNamesThatOnlyLookAlike_StillCanonicalised()
    {
        Assert.Equal(Json("""{"amount":1,"amounts":2}"""), Json("""{ "amounts":2, "amount":1.0 }"""));
    }

    [Theory]
    [InlineData("""{"amount":1,"amount":1}""", """{"amount":1}""")]
    [InlineData("""{"amount":1""", """{"amount":1}""")]
    [InlineData("""{"note":"\ud800","amount":1}""", """{"note":"","amount":1}""")]
    [InlineData("""{"amount":1} trailing""", """{"amount":1}""")]
    public void Compute_NotIJson_StillFingerprintsButDiffersFromValidEquivalent(string invalid, string valid)
    {
        var writer = new System.Buffers.ArrayBufferWriter<byte>();
        Assert.False(JsonCanonicalizer.TryCanonicalize(Encoding.UTF8.GetBytes(invalid), writer));

        var fingerprint = Json(invalid);

        Assert.Equal(RequestFingerprint.Length, fingerprint.Length);
        Assert.NotEqual(Json(valid), fingerprint);
    }

    [Fact]
    public void Compute_CanonicalBodyHashedRawUnderOtherContentType_Differs()
    {
        const string canonical = """{"a":1}""";

        Assert.NotEqual(Json(canonical), Json(canonical, "application/octet-stream"));
    }

    [Fact]
    public void Compute_QueryOrder_DoesNotMatter()
    {
        var ab = RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Query = [Pair("a", "1"), Pair("b", "2")] });
        var ba = RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Query = [Pair("b", "2"), Pair("a", "1")] });

        Assert.Equal(ab, ba);
    }

    [Fact]
    public void Compute_RepeatedQueryParameter_SortedByValue()
    {
        var first = RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Query = [Pair("a", "1"), Pair("a", "2")] });
        var second = RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Query = [Pair("a", "2"), Pair("a", "1")] });

        Assert.Equal(first, second);
    }

    [Fact]
    public void Compute_QueryValues_Matter()
    {
        var one = RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Query = [Pair("a", "1")] });
        var two = RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Query = [Pair("a", "2")] });
        var none = RequestFingerprint.Compute(new FingerprintInput("POST", "/p"));
        var flag = RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Query = [Pair("a", null)] });
        var empty = RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Query = [Pair("a", "")] });

        Assert.Equal(5, new[] { one, two, none, flag, empty }.Distinct().Count());
    }

    [Fact]
    public void Compute_QueryNameCase_Matters()
    {
        Assert.NotEqual(
            RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Query = [Pair("a", "1")] }),
            RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Query = [Pair("A", "1")] }));
    }

    [Fact]
    public void Compute_HeaderNameCase_DoesNotMatter()
    {
        var lower = RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Headers = [Pair("x-tenant", "acme"), Pair("accept-language", "fr")] });
        var mixed = RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Headers = [Pair("Accept-Language", "fr"), Pair("X-TENANT", "acme")] });

        Assert.Equal(lower, mixed);
    }

    [Fact]
    public void Compute_HeaderValue_Matters()
    {
        Assert.NotEqual(
            RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Headers = [Pair("x-tenant", "acme")] }),
            RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Headers = [Pair("x-tenant", "ACME")] }));
        Assert.NotEqual(
            RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Headers = [Pair("x-tenant", "acme")] }),
            RequestFingerprint.Compute(new FingerprintInput("POST", "/p")));
    }

    [Fact]
    public void Compute_MethodCase_DoesNotMatter()
    {
        Assert.Equal(
            RequestFingerprint.Compute(new FingerprintInput("post", "/p")),
            RequestFingerprint.Compute(new FingerprintInput("POST", "/p")));
        Assert.NotEqual(
            RequestFingerprint.Compute(new FingerprintInput("PUT", "/p")),
            RequestFingerprint.Compute(new FingerprintInput("POST", "/p")));
    }

    [Fact]
    public void Compute_PathCase_Matters()
    {
        Assert.NotEqual(Json("{}", path: "/Payments"), Json("{}", path: "/payments"));
    }

    [Fact]
    public void Compute_BytesMovedBetweenComponents_DifferentFingerprint()
    {
        Assert.NotEqual(
            RequestFingerprint.Compute(new FingerprintInput("POST", "/ab") { Query = [Pair("c", "d")] }),
            RequestFingerprint.Compute(new FingerprintInput("POST", "/a") { Query = [Pair("bc", "d")] }));
        Assert.NotEqual(
            RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Query = [Pair("ab", "c")] }),
            RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Query = [Pair("a", "bc")] }));
        Assert.NotEqual(
            RequestFingerprint.Compute(new FingerprintInput("POS", "T/p")),
            RequestFingerprint.Compute(new FingerprintInput("POST", "/p")));
        Assert.NotEqual(
            RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Query = [Pair("a", "1")] }),
            RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Headers = [Pair("a", "1")] }));
    }

    [Theory]
    [InlineData("application/json; charset=utf-8")]
    [InlineData("application/json;charset=UTF-8")]
    [InlineData("Application/JSON")]
    [InlineData(" application/json ; charset=\"utf-8\"")]
    public void Compute_JsonContentTypeWithParametersOrCase_StillCanonicalised(string contentType)
    {
        Assert.Equal(Json("""{"a":1,"b":2}"""), Json("""{ "b": 2.0, "a": 1 }""", contentType));
    }

    [Fact]
    public void Compute_StructuredSyntaxJson_Canonicalised()
    {
        Assert.Equal(
            Json("""{"a":1,"b":2}""", "application/merge-patch+json"),
            Json("""{"b":2,"a":1}""", "application/merge-patch+json"));
        Assert.NotEqual(
            Json("""{"a":1,"b":2}""", "application/merge-patch+json"),
            Json("""{"a":1,"b":2}""", "application/json"));
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/octet-stream")]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData(null)]
    public void Compute_NonJsonBody_HashedAsRawBytes(string? contentType)
    {
        Assert.NotEqual(
            RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { ContentType = contentType, Body = """{"a":1,"b":2}"""u8.ToArray() }),
            RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { ContentType = contentType, Body = """{"b":2,"a":1}"""u8.ToArray() }));
    }

    [Fact]
    public void Compute_RawBodyCharset_Matters()
    {
        Assert.NotEqual(
            RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { ContentType = "text/plain; charset=utf-8", Body = "caf\u00e9"u8.ToArray() }),
            RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { ContentType = "text/plain; charset=latin1", Body = "caf\u00e9"u8.ToArray() }));
    }

    [Fact]
    public void Compute_EmptyBody_HashedAsEmptyRaw()
    {
        var emptyJson = RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { ContentType = "application/json" });
        var emptyObject = Json("{}", path: "/p");

        Assert.Equal(RequestFingerprint.Length, emptyJson.Length);
        Assert.NotEqual(emptyObject, emptyJson);
        Assert.NotEqual(RequestFingerprint.Compute(new FingerprintInput("POST", "/p")), emptyJson);
    }

    [Fact]
    public void Compute_DefaultInput_Throws()
    {
        Assert.Throws<ArgumentException>(() => RequestFingerprint.Compute(default));
    }

    [Fact]
    public void Constructor_MissingMethodOrPath_Throws()
    {
        Assert.Throws<ArgumentException>(() => new FingerprintInput("", "/p"));
        Assert.Throws<ArgumentNullException>(() => new FingerprintInput(null!, "/p"));
        Assert.Throws<ArgumentNullException>(() => new FingerprintInput("POST", null!));
    }

    [Theory]
    [InlineData("application/json", true)]
    [InlineData("APPLICATION/JSON", true)]
    [InlineData("application/json; charset=utf-8", true)]
    [InlineData("  application/json  ", true)]
    [InlineData("application/problem+json", true)]
    [InlineData("application/vnd.acme.payment+JSON; version=2", true)]
    [InlineData("text/x+json", true)]
    [InlineData("application/json-seq", false)]
    [InlineData("application/jsonx", false)]
    [InlineData("application/+json", false)]
    [InlineData("+json", false)]
    [InlineData("/+json", false)]
    [InlineData("application/x+json/y", false)]
    [InlineData("text/json", false)]
    [InlineData("text/plain", false)]
    [InlineData("json", false)]
    [InlineData("", false)]
    [InlineData(null, false)]
    public void IsJsonContentType_MediaTypes_RecognisesJson(string? contentType, bool expected)
    {
        Assert.Equal(expected, RequestFingerprint.IsJsonContentType(contentType));
    }
}
