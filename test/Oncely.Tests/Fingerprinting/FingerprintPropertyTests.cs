using System.Buffers;
using System.Text;
using CsCheck;

namespace Oncely.Tests.Fingerprinting;

// Universal rules of canonicalisation, checked on random JSON documents.
public class FingerprintPropertyTests
{
    private const long Iterations = 400;

    private static readonly Gen<(JsonModel Document, int FirstSeed, int SecondSeed)> Respellings =
        Gen.Select(JsonGen.Document, Gen.Int, Gen.Int);

    private static string Fingerprint(string json, string method = "POST", string path = "/payments") =>
        RequestFingerprint.Compute(new FingerprintInput(method, path)
        {
            ContentType = "application/json",
            Body = Encoding.UTF8.GetBytes(json),
        });

    // The plain-decimal fast path must write exactly what the exact double path writes.
    [Fact]
    public void TryCanonicalize_PlainDecimal_SameTextAsTheDoublePath()
    {
        var plainDecimal =
            from negative in Gen.Bool
            from integer in Gen.OneOf(Gen.Const("0"), Gen.Long[1, 999_999_999_999_999].Select(v => v.ToString(System.Globalization.CultureInfo.InvariantCulture)))
            from leadingZeros in Gen.Int[0, 7]
            from fraction in Gen.OneOf(Gen.Const(string.Empty), Gen.Long[0, 99_999_999].Select(v => v.ToString(System.Globalization.CultureInfo.InvariantCulture)))
            from trailingZeros in Gen.Int[0, 3]
            let fractionText = fraction.Length == 0 && trailingZeros == 0 ? string.Empty : new string('0', leadingZeros) + fraction + new string('0', trailingZeros)
            from exponent in Gen.OneOf(Gen.Const(string.Empty), Gen.Int[-330, 330].Select(e => "e" + e.ToString(System.Globalization.CultureInfo.InvariantCulture)), Gen.Int[0, 30].Select(e => "E+" + e.ToString(System.Globalization.CultureInfo.InvariantCulture)))
            select (negative ? "-" : string.Empty) + integer + (fractionText.Length == 0 ? string.Empty : "." + fractionText) + exponent;

        plainDecimal.Sample(
            text =>
            {
                var canonical = JsonCanonicalizerTests.Canonicalize("[" + text + "]");
                var value = double.Parse(text, System.Globalization.CultureInfo.InvariantCulture);
                if (!double.IsFinite(value) || !ExactlyADouble(text, value))
                {
                    // More than a double holds: refused (hashed raw), never rounded.
                    Assert.Null(canonical);
                    return;
                }

                var buffer = new byte[JsonCanonicalizer.MaxNumberLength];
                Assert.True(JsonCanonicalizer.TryFormatNumber(value, buffer, out var written));
                Assert.Equal("[" + Encoding.ASCII.GetString(buffer, 0, written) + "]", canonical);
            },
            iter: 20_000);

        // Whether the text's decimal value is the double's own (shortest) value, compared as exact decimals.
        static bool ExactlyADouble(string text, double value)
        {
            static (System.Numerics.BigInteger Digits, int Exponent) Exact(string number)
            {
                var mantissaEnd = number.IndexOfAny(['e', 'E']);
                var mantissa = mantissaEnd < 0 ? number : number[..mantissaEnd];
                var exponent = mantissaEnd < 0 ? 0 : int.Parse(number[(mantissaEnd + 1)..], System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture);
                var dot = mantissa.IndexOf('.');
                if (dot >= 0)
                {
                    exponent -= mantissa.Length - dot - 1;
                    mantissa = mantissa.Remove(dot, 1);
                }

                var digits = System.Numerics.BigInteger.Parse(mantissa, System.Globalization.CultureInfo.InvariantCulture);
                while (!digits.IsZero && digits % 10 == 0)
                {
                    digits /= 10;
                    exponent++;
                }

                return digits.IsZero ? (0, 0) : (digits, exponent);
            }

            return Exact(text) == Exact(value.ToString("R", System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    [Fact]
    public void TryCanonicalize_GeneratedDocument_Succeeds()
    {
        JsonGen.Document.Sample(
            document => JsonCanonicalizerTests.Canonicalize(JsonGen.Write(document)) is not null,
            iter: Iterations);
    }

    [Fact]
    public void TryCanonicalize_MemberOrderWhitespaceNumberAndEscapeSpelling_DoNotChangeOutput()
    {
        Respellings.Sample(
            (document, first, second) =>
            {
                var a = JsonGen.Write(document, new Random(first));
                var b = JsonGen.Write(document, new Random(second));
                var canonicalA = JsonCanonicalizerTests.Canonicalize(a);
                Assert.NotNull(canonicalA);
                Assert.Equal(canonicalA, JsonCanonicalizerTests.Canonicalize(b));
                Assert.Equal(canonicalA, JsonCanonicalizerTests.Canonicalize(JsonGen.Write(document)));
            },
            iter: Iterations);
    }

    [Fact]
    public void Compute_RespelledJsonBody_SameFingerprint()
    {
        Respellings.Sample(
            (document, first, second) =>
                Fingerprint(JsonGen.Write(document, new Random(first))) == Fingerprint(JsonGen.Write(document, new Random(second))),
            iter: Iterations);
    }

    [Fact]
    public void TryCanonicalize_CanonicalOutput_IsAFixedPoint()
    {
        Gen.Select(JsonGen.Document, Gen.Int).Sample(
            (document, seed) =>
            {
                var once = JsonCanonicalizerTests.Canonicalize(JsonGen.Write(document, new Random(seed)));
                Assert.NotNull(once);
                Assert.Equal(once, JsonCanonicalizerTests.Canonicalize(once));
            },
            iter: Iterations);
    }

    [Fact]
    public void TryCanonicalize_Output_IsValidJsonWithTheSameValue()
    {
        Gen.Select(JsonGen.Document, Gen.Int).Sample(
            (document, seed) =>
            {
                var written = JsonGen.Write(document, new Random(seed));
                var canonical = JsonCanonicalizerTests.Canonicalize(written);
                Assert.NotNull(canonical);
                using var left = System.Text.Json.JsonDocument.Parse(written);
                using var right = System.Text.Json.JsonDocument.Parse(canonical);
                Assert.True(System.Text.Json.JsonElement.DeepEquals(left.RootElement, right.RootElement));
            },
            iter: Iterations);
    }

    [Fact]
    public void Compute_ChangedLeafValue_DifferentFingerprint()
    {
        Gen.Select(JsonGen.Document, Gen.Int, Gen.Int[0, int.MaxValue]).Sample(
            (document, seed, pick) =>
            {
                var leaves = JsonGen.CountLeaves(document);
                if (leaves == 0)
                {
                    return true;
                }

                var changed = JsonGen.ChangeLeaf(document, pick % leaves);
                return Fingerprint(JsonGen.Write(document, new Random(seed))) != Fingerprint(JsonGen.Write(changed, new Random(seed)));
            },
            iter: Iterations);
    }

    [Fact]
    public void Compute_DifferentPath_DifferentFingerprint()
    {
        Gen.Select(JsonGen.Document, Gen.String, Gen.String).Where((_, a, b) => a != b).Sample(
            (document, a, b) =>
            {
                var json = JsonGen.Write(document);
                return Fingerprint(json, path: a) != Fingerprint(json, path: b);
            },
            iter: Iterations);
    }

    [Fact]
    public void Compute_DifferentMethod_DifferentFingerprint_MethodCaseIgnored()
    {
        string[] methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "QUERY"];
        Gen.Select(JsonGen.Document, Gen.OneOf(methods), Gen.OneOf(methods)).Where((_, a, b) => a != b).Sample(
            (document, a, b) =>
            {
                var json = JsonGen.Write(document);
                Assert.NotEqual(Fingerprint(json, method: a), Fingerprint(json, method: b));
                Assert.Equal(Fingerprint(json, method: a), Fingerprint(json, method: a.ToLowerInvariant()));
            },
            iter: 100);
    }

    [Fact]
    public void Compute_QueryOrder_DoesNotMatter()
    {
        var pair = Gen.Select(JsonGen.Text, Gen.Frequency((1, Gen.Const((string?)null)), (3, JsonGen.Text.Select(s => (string?)s)))).Select((k, v) => new KeyValuePair<string, string?>(k, v));
        Gen.Select(pair.Array[0, 6], Gen.Int).Sample(
            (query, seed) =>
            {
                var shuffled = query.ToArray();
                new Random(seed).Shuffle(shuffled);
                return RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Query = query })
                    == RequestFingerprint.Compute(new FingerprintInput("POST", "/p") { Query = shuffled });
            },
            iter: Iterations);
    }

    [Fact]
    public void TryCanonicalize_ArbitraryBytes_NeverThrows()
    {
        Gen.Byte.Array[0, 64].Sample(
            bytes =>
            {
                var writer = new ArrayBufferWriter<byte>();
                var ok = JsonCanonicalizer.TryCanonicalize(bytes, writer);
                return ok || writer.WrittenCount == 0;
            },
            iter: Iterations);
    }

    [Fact]
    public void TryCanonicalize_ArbitraryDouble_RoundTripsThroughItsCanonicalText()
    {
        Gen.Double.Where(double.IsFinite).Sample(
            value =>
            {
                var text = value.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
                var canonical = JsonCanonicalizerTests.Canonicalize("[" + text + "]");
                Assert.NotNull(canonical);
                Assert.Equal(value == 0 ? 0 : value, double.Parse(canonical[1..^1], System.Globalization.CultureInfo.InvariantCulture));
            },
            iter: Iterations * 5);
    }
}
