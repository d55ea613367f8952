using CsCheck;

namespace Oncely.Tests;

public class IdempotencyKeyParserTests
{
    private const int Max = IdempotencyKeyParser.DefaultMaxLength;

    [Theory]
    [InlineData("abc", "abc")]
    [InlineData("\"abc\"", "abc")]
    [InlineData("  abc  ", "abc")]
    [InlineData("\"a\\\"b\"", "a\"b")]
    [InlineData("\"a\\\\b\"", "a\\b")]
    [InlineData("8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324")]
    public void TryParse_ValidForms_ReturnKey(string raw, string expected)
    {
        Assert.Equal(IdempotencyKeyError.None, IdempotencyKeyParser.TryParse(raw, Max, out var key));
        Assert.Equal(expected, key);
    }

    [Fact]
    public void TryParse_BareAndQuotedForms_MeanTheSameKey()
    {
        IdempotencyKeyParser.TryParse("order-42", Max, out var bare);
        IdempotencyKeyParser.TryParse("\"order-42\"", Max, out var quoted);
        Assert.Equal(bare, quoted);
    }

    [Theory]
    [InlineData("", IdempotencyKeyError.Empty)]
    [InlineData("\"\"", IdempotencyKeyError.Empty)]
    [InlineData("a b", IdempotencyKeyError.InvalidCharacter)]
    [InlineData("\"a b\"", IdempotencyKeyError.InvalidCharacter)]
    [InlineData("ab\u0001", IdempotencyKeyError.InvalidCharacter)]
    [InlineData("ab\u007f", IdempotencyKeyError.InvalidCharacter)]
    [InlineData("clé", IdempotencyKeyError.InvalidCharacter)]
    [InlineData("a,b", IdempotencyKeyError.MultipleValues)]
    [InlineData("\"a\", \"b\"", IdempotencyKeyError.MultipleValues)]
    [InlineData("\"abc", IdempotencyKeyError.MalformedQuotedString)]
    [InlineData("\"a\\x\"", IdempotencyKeyError.MalformedQuotedString)]
    [InlineData("\"abc\"def", IdempotencyKeyError.MalformedQuotedString)]
    public void TryParse_InvalidForms_ReturnError(string raw, IdempotencyKeyError expected)
    {
        Assert.Equal(expected, IdempotencyKeyParser.TryParse(raw, Max, out var key));
        Assert.Null(key);
    }

    [Fact]
    public void TryParse_LengthLimit_Is255Characters()
    {
        Assert.Equal(IdempotencyKeyError.None, IdempotencyKeyParser.TryParse(new string('k', 255), Max, out _));
        Assert.Equal(IdempotencyKeyError.TooLong, IdempotencyKeyParser.TryParse(new string('k', 256), Max, out _));
        Assert.Equal(IdempotencyKeyError.TooLong, IdempotencyKeyParser.TryParse("\"" + new string('k', 256) + "\"", Max, out _));
    }

    [Fact]
    public void TryParse_BothHeadersSameKey_Accepted()
    {
        Assert.Equal(IdempotencyKeyError.None, IdempotencyKeyParser.TryParse(["abc"], ["\"abc\""], Max, out var key));
        Assert.Equal("abc", key);
    }

    [Fact]
    public void TryParse_BothHeadersDifferentKeys_Conflict()
        => Assert.Equal(IdempotencyKeyError.ConflictingHeaders, IdempotencyKeyParser.TryParse(["abc"], ["abd"], Max, out _));

    [Fact]
    public void TryParse_HeaderRepeated_MultipleValues()
        => Assert.Equal(IdempotencyKeyError.MultipleValues, IdempotencyKeyParser.TryParse(["abc", "abc"], [], Max, out _));

    [Fact]
    public void TryParse_AliasOnly_Accepted()
    {
        Assert.Equal(IdempotencyKeyError.None, IdempotencyKeyParser.TryParse([], ["xyz"], Max, out var key));
        Assert.Equal("xyz", key);
    }

    [Fact]
    public void TryParse_NoHeaders_NoKeyNoError()
    {
        Assert.Equal(IdempotencyKeyError.None, IdempotencyKeyParser.TryParse([], [], Max, out var key));
        Assert.Null(key);
    }

    [Fact]
    public void TryParse_RandomStrings_NeverThrowAndOnlyAcceptVisibleAscii()
    {
        Gen.String.Sample(s =>
        {
            var error = IdempotencyKeyParser.TryParse(s, Max, out var key);
            if (error == IdempotencyKeyError.None)
            {
                Assert.NotNull(key);
                Assert.InRange(key!.Length, 1, Max);
                Assert.All(key, c => Assert.InRange(c, '!', '~'));
            }
            else
            {
                Assert.Null(key);
            }
        }, iter: 5000);
    }
}
