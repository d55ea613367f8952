using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Oncely.Tests.Fingerprinting;

public class JsonCanonicalizerTests
{
    internal static string? Canonicalize(string json) => Canonicalize(Encoding.UTF8.GetBytes(json));

    internal static string? Canonicalize(byte[] utf8)
    {
        var writer = new ArrayBufferWriter<byte>();
        return JsonCanonicalizer.TryCanonicalize(utf8, writer) ? Encoding.UTF8.GetString(writer.WrittenSpan) : null;
    }

    // RFC 8785 section 3.2.2, with its first number (333333333.33333329) replaced by the text of the double it denotes:
    // Oncely refuses numbers whose text a double cannot hold exactly (see TryCanonicalize_RfcSampleAsPublished_...).
    [Fact]
    public void TryCanonicalize_RfcSampleWithExactNumbers_MatchesRfcOutput()
    {
        const string input = """
            {
              "numbers": [333333333.3333333, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
              "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
              "literals": [null, true, false]
            }
            """;
        const string expected = """{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}""";

        Assert.Equal(expected, Canonicalize(input));
    }

    [Fact]
    public void TryCanonicalize_RfcSampleWithExactNumbers_MatchesRfcOutputBytes()
    {
        const string input = """{"numbers":[333333333.3333333,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/","literals":[null,true,false]}""";
        var writer = new ArrayBufferWriter<byte>();

        Assert.True(JsonCanonicalizer.TryCanonicalize(Encoding.UTF8.GetBytes(input), writer));
        // The byte listing printed in RFC 8785 section 3.2.4.
        const string rfcBytes = """
            7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72
            75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a
            5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31
            65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37
            5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30
            30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d
            """;
        Assert.Equal(
            rfcBytes.Replace(" ", "", StringComparison.Ordinal).Replace("\n", "", StringComparison.Ordinal),
            Convert.ToHexStringLower(writer.WrittenSpan));
    }

    [Fact]
    public void TryCanonicalize_RfcSampleAsPublished_RefusedBecause333333333_33333329IsNotExact()
    {
        const string input = """{"numbers":[333333333.33333329,1E30],"literals":[null,true,false]}""";

        Assert.Null(Canonicalize(input));
    }

    // RFC 8785 section 3.2.3: names sort by their UTF-16 code units, so the emoji (a surrogate pair) comes before U+FB33.
    [Fact]
    public void TryCanonicalize_RfcSortingSample_SortsByUtf16CodeUnits()
    {
        const string input = """
            {
              "\u20ac": "Euro Sign",
              "\r": "Carriage Return",
              "\ufb33": "Hebrew Letter Dalet With Dagesh",
              "1": "One",
              "\ud83d\ude00": "Emoji: Grinning Face",
              "\u0080": "Control",
              "\u00f6": "Latin Small Letter O With Diaeresis"
            }
            """;
        const string expected = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"\u00f6\":\"Latin Small Letter O With Diaeresis\"," +
            "\"\u20ac\":\"Euro Sign\",\"\U0001F600\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}";

        Assert.Equal(expected, Canonicalize(input));
    }

    [Fact]
    public void TryCanonicalize_LiteralNonAsciiNames_SortLikeTheirEscapedForms()
    {
        const string escaped = """{"\ufb33":1,"\ud83d\ude00":2,"\u20ac":3}""";
        const string literal = "{\"\ufb33\":1,\"\U0001F600\":2,\"\u20ac\":3}";

        Assert.Equal(Canonicalize(escaped), Canonicalize(literal));
        Assert.Equal("{\"\u20ac\":3,\"\U0001F600\":2,\"\ufb33\":1}", Canonicalize(literal));
    }

    // RFC 8785 Appendix B: IEEE-754 bit patterns and the text ECMAScript writes for them.
    [Theory]
    [InlineData("0000000000000000", "0")]
    [InlineData("8000000000000000", "0")]
    [InlineData("0000000000000001", "5e-324")]
    [InlineData("8000000000000001", "-5e-324")]
    [InlineData("7fefffffffffffff", "1.7976931348623157e+308")]
    [InlineData("ffefffffffffffff", "-1.7976931348623157e+308")]
    [InlineData("4340000000000000", "9007199254740992")]
    [InlineData("c340000000000000", "-9007199254740992")]
    [InlineData("4430000000000000", "295147905179352830000")]
    [InlineData("44b52d02c7e14af5", "9.999999999999997e+22")]
    [InlineData("44b52d02c7e14af6", "1e+23")]
    [InlineData("44b52d02c7e14af7", "1.0000000000000001e+23")]
    [InlineData("444b1ae4d6e2ef4e", "999999999999999700000")]
    [InlineData("444b1ae4d6e2ef4f", "999999999999999900000")]
    [InlineData("444b1ae4d6e2ef50", "1e+21")]
    [InlineData("3eb0c6f7a0b5ed8c", "9.999999999999997e-7")]
    [InlineData("3eb0c6f7a0b5ed8d", "0.000001")]
    [InlineData("41b3de4355555553", "333333333.3333332")]
    [InlineData("41b3de4355555554", "333333333.33333325")]
    [InlineData("41b3de4355555555", "333333333.3333333")]
    [InlineData("41b3de4355555556", "333333333.3333334")]
    [InlineData("41b3de4355555557", "333333333.33333343")]
    [InlineData("becbf647612f3696", "-0.0000033333333333333333")]
    [InlineData("43143ff3c1cb0959", "1424953923781206.2")]
    public void TryFormatNumber_RfcAppendixBVectors_WriteEcmaScriptText(string ieee754, string expected)
    {
        var value = BitConverter.Int64BitsToDouble(BinaryPrimitives.ReadInt64BigEndian(Convert.FromHexString(ieee754)));
        Span<byte> buffer = stackalloc byte[JsonCanonicalizer.MaxNumberLength];

        Assert.True(JsonCanonicalizer.TryFormatNumber(value, buffer, out var written));
        Assert.Equal(expected, Encoding.ASCII.GetString(buffer[..written]));
    }

    [Theory]
    [InlineData("7fffffffffffffff")]
    [InlineData("7ff0000000000000")]
    [InlineData("fff0000000000000")]
    public void TryFormatNumber_NaNOrInfinity_Refused(string ieee754)
    {
        var value = BitConverter.Int64BitsToDouble(BinaryPrimitives.ReadInt64BigEndian(Convert.FromHexString(ieee754)));

        Assert.False(JsonCanonicalizer.TryFormatNumber(value, new byte[JsonCanonicalizer.MaxNumberLength], out _));
    }

    // The RFC's number examples, and the exact spellings a document can hold.
    [Theory]
    [InlineData("1e30", "1e+30")]
    [InlineData("1E30", "1e+30")]
    [InlineData("4.50", "4.5")]
    [InlineData("2e-3", "0.002")]
    [InlineData("0.000001", "0.000001")]
    [InlineData("1e-7", "1e-7")]
    [InlineData("-0", "0")]
    [InlineData("-0.0", "0")]
    [InlineData("0e10", "0")]
    [InlineData("1e21", "1e+21")]
    [InlineData("1e20", "100000000000000000000")]
    [InlineData("100", "100")]
    [InlineData("100.0", "100")]
    [InlineData("100.00", "100")]
    [InlineData("1e2", "100")]
    [InlineData("1E2", "100")]
    [InlineData("1E+2", "100")]
    [InlineData("10000e-2", "100")]
    [InlineData("0.1e3", "100")]
    [InlineData("-12.50", "-12.5")]
    [InlineData("0.1", "0.1")]
    [InlineData("123456789012345680000", "123456789012345680000")]
    [InlineData("9007199254740993e0", null)]
    [InlineData("5e-324", "5e-324")]
    [InlineData("1.7976931348623157e308", "1.7976931348623157e+308")]
    [InlineData("0.000000000000000000000000001", "1e-27")]
    public void TryCanonicalize_NumberSpellings_WriteEcmaScriptText(string number, string? expected)
    {
        Assert.Equal(expected is null ? null : "[" + expected + "]", Canonicalize("[" + number + "]"));
    }

    [Theory]
    [InlineData("10000000000000000001")]
    [InlineData("9007199254740993")]
    [InlineData("0.1000000000000000000001")]
    [InlineData("333333333.33333329")]
    [InlineData("1e400")]
    [InlineData("-1e400")]
    [InlineData("1e-400")]
    [InlineData("1.00000000000000000000000000000000000000000001")]
    [InlineData("1e99999999999999999999999")]
    public void TryCanonicalize_LossyOrOutOfRangeNumber_ReturnsFalse(string number)
    {
        Assert.Null(Canonicalize("{\"amount\":" + number + "}"));
    }

    [Theory]
    [InlineData("1.000000000000000000000000000000000000000000000000", "1")]
    [InlineData("1e0000000000000000000000002", "100")]
    [InlineData("0.000000000000000000000000000000000000000000000000000001e54", "1")]
    [InlineData("12300000000000000000000000000000e-30", "12.3")]
    public void TryCanonicalize_ManyInsignificantZeros_StillExact(string number, string expected)
    {
        Assert.Equal("[" + expected + "]", Canonicalize("[" + number + "]"));
    }

    [Fact]
    public void TryCanonicalize_StringEscapes_UseJcsForms()
    {
        const string input = "[\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001F \\\" \\\\ \\/ / \\u00e9 \\u007f \\u2028\"]";
        const string expected = "[\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f \\\" \\\\ / / \u00e9 \u007f \u2028\"]";

        Assert.Equal(expected, Canonicalize(input));
    }

    [Fact]
    public void TryCanonicalize_LiteralsAndWhitespace_Compact()
    {
        Assert.Equal("{\"a\":[true,false,null,{},[]]}", Canonicalize(" \r\n\t{ \"a\" : [ true , false , null , { } , [ ] ] }\n"));
    }

    [Fact]
    public void TryCanonicalize_NestedObjects_SortedAtEveryLevel()
    {
        const string input = """{"b":{"z":1,"y":{"d":[{"k":2,"j":1}],"c":0}},"a":[{"q":1,"p":2}]}""";
        const string expected = """{"a":[{"p":2,"q":1}],"b":{"y":{"c":0,"d":[{"j":1,"k":2}]},"z":1}}""";

        Assert.Equal(expected, Canonicalize(input));
    }

    [Theory]
    [InlineData("12")]
    [InlineData("\"text\"")]
    [InlineData("true")]
    [InlineData("null")]
    public void TryCanonicalize_ScalarRoot_Accepted(string json)
    {
        Assert.Equal(json, Canonicalize(json));
    }

    [Theory]
    [InlineData("""{"a":1,"a":2}""")]
    [InlineData("""{"a":1,"\u0061":1}""")]
    [InlineData("""[{"x":{"b":1,"c":2,"b":3}}]""")]
    [InlineData("""{"amount":100,"Amount":999}""")]
    [InlineData("""{"Amount":999,"b":1,"amount":100}""")]
    [InlineData("""{"x":{"AMOUNT":1,"amount":2}}""")]
    [InlineData("""{"\u0041mount":1,"amount":2}""")]
    [InlineData("""{"émile":1,"ÉMILE":2}""")]
    [InlineData("""{"a0":0,"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,"b0":0,"b1":1,"b2":2,"b3":3,"b4":4,"b5":5,"b6":6,"A9":9}""")]
    public void TryCanonicalize_DuplicateNames_ReturnsFalse(string json)
    {
        Assert.Null(Canonicalize(json));
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("{")]
    [InlineData("{\"a\":1,}")]
    [InlineData("[1,]")]
    [InlineData("{\"a\" 1}")]
    [InlineData("{'a':1}")]
    [InlineData("[01]")]
    [InlineData("[1.]")]
    [InlineData("[.5]")]
    [InlineData("[+1]")]
    [InlineData("[NaN]")]
    [InlineData("[Infinity]")]
    [InlineData("{} {}")]
    [InlineData("{}x")]
    [InlineData("[1] // comment")]
    [InlineData("/* c */ [1]")]
    [InlineData("[\"tab\there\"]")]
    [InlineData("[\"\\x41\"]")]
    [InlineData("[\"\\u12\"]")]
    public void TryCanonicalize_MalformedJson_ReturnsFalse(string json)
    {
        Assert.Null(Canonicalize(json));
    }

    [Theory]
    [InlineData("[\"\\ud800\"]")]
    [InlineData("[\"\\udc00\"]")]
    [InlineData("[\"\\ud800\\u0041\"]")]
    [InlineData("[\"\\ud83d\\ud83d\"]")]
    [InlineData("{\"\\ud800\":1}")]
    public void TryCanonicalize_LoneSurrogateEscape_ReturnsFalse(string json)
    {
        Assert.Null(Canonicalize(json));
    }

    [Theory]
    [InlineData(new byte[] { 0x5B, 0x22, 0xC3, 0x22, 0x5D })] // ["<truncated 2-byte sequence>"]
    [InlineData(new byte[] { 0x5B, 0x22, 0xFF, 0x22, 0x5D })] // ["<0xFF>"]
    [InlineData(new byte[] { 0x5B, 0x22, 0xED, 0xA0, 0x80, 0x22, 0x5D })] // ["<UTF-8 encoded surrogate>"]
    [InlineData(new byte[] { 0x5B, 0x22, 0xC0, 0xAF, 0x22, 0x5D })] // ["<overlong '/'>"]
    [InlineData(new byte[] { 0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D })] // {"<0xFF>":1}
    [InlineData(new byte[] { 0x5B, 0x22, 0x5C, 0x6E, 0xFF, 0x22, 0x5D })] // ["\n<0xFF>"]
    public void TryCanonicalize_InvalidUtf8_ReturnsFalse(byte[] json)
    {
        Assert.Null(Canonicalize(json));
    }

    [Fact]
    public void TryCanonicalize_ByteOrderMark_ReturnsFalse()
    {
        Assert.Null(Canonicalize([0xEF, 0xBB, 0xBF, (byte)'[', (byte)'1', (byte)']']));
    }

    [Fact]
    public void TryCanonicalize_DepthLimit_Is64()
    {
        Assert.NotNull(Canonicalize(new string('[', 64) + new string(']', 64)));
        Assert.Null(Canonicalize(new string('[', 65) + new string(']', 65)));
        Assert.NotNull(Canonicalize(string.Concat(Enumerable.Repeat("{\"a\":", 64)) + "1" + new string('}', 64)));
        Assert.Null(Canonicalize(string.Concat(Enumerable.Repeat("{\"a\":", 65)) + "1" + new string('}', 65)));
    }

    [Fact]
    public void TryCanonicalize_Refused_LeavesDestinationUntouched()
    {
        var writer = new ArrayBufferWriter<byte>();

        Assert.False(JsonCanonicalizer.TryCanonicalize("""{"b":1,"a":[1,2,{"c":1,"c":2}]}"""u8, writer));
        Assert.Equal(0, writer.WrittenCount);
    }

    [Fact]
    public void TryCanonicalize_LargeDocument_GrowsItsBuffers()
    {
        var builder = new StringBuilder("{");
        for (var i = 999; i >= 0; i--)
        {
            builder.Append(i == 999 ? "" : ",").Append("\"k").Append(i.ToString("D4")).Append("\":[1e20,\"\\u00e9\",{\"z\":1,\"a\":2}]");
        }

        builder.Append('}');
        var result = Canonicalize(builder.ToString());

        Assert.NotNull(result);
        Assert.StartsWith("{\"k0000\":[100000000000000000000,\"\u00e9\",{\"a\":2,\"z\":1}],\"k0001\":", result, StringComparison.Ordinal);
        Assert.EndsWith("\"k0999\":[100000000000000000000,\"\u00e9\",{\"a\":2,\"z\":1}]}", result, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("a", "b", -1)]
    [InlineData("ab", "a", 1)]
    [InlineData("\uFB33", "\U0001F600", 1)]
    [InlineData("\U0001F600", "\uFFFF", -1)]
    [InlineData("\U0001F600", "\U0001F601", -1)]
    [InlineData("x\U0001F600", "x\uE000", -1)]
    [InlineData("\u00e9", "\u00e9", 0)]
    public void CompareUtf16_Names_OrderLikeOrdinalUtf16(string left, string right, int expected)
    {
        Assert.Equal(expected, Math.Sign(JsonCanonicalizer.CompareUtf16(Encoding.UTF8.GetBytes(left), Encoding.UTF8.GetBytes(right))));
        Assert.Equal(Math.Sign(string.CompareOrdinal(left, right)), expected);
    }
}
