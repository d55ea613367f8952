using System.Text;
using CsCheck;
using Microsoft.Extensions.Compliance.Classification;
using Microsoft.Extensions.Compliance.Redaction;
using Microsoft.Extensions.DependencyInjection;

namespace Oncely.Tests.Redaction;

/// <summary>The value-based card-number detector (issue 19): examples, then properties over generated text.</summary>
public class PrimaryAccountNumberRedactorTests
{
    private static readonly PrimaryAccountNumberRedactor Redactor = PrimaryAccountNumberRedactor.Instance;

    [Theory]
    [InlineData("4242424242424242", "************4242")]
    [InlineData("ref 4242 4242 4242 4242 x", "ref **** **** **** 4242 x")]
    [InlineData("4111-1111-1111-1111", "****-****-****-1111")]
    [InlineData("amex 3782-822463-10005.", "amex ****-******-*0005.")]
    [InlineData("6222000000000000004", "***************0004")]
    [InlineData("order-5555555555554444", "order-************4444")]
    [InlineData("qty 2 4242 4242 4242 4242", "qty 2 **** **** **** 4242")]
    [InlineData("\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12", "************\uff14\uff12\uff14\uff12")]
    public void Redact_CardNumberAnywhereInText_AllButLastFourDigitsMasked(string text, string expected)
        => Assert.Equal(expected, Redactor.Redact(text));

    [Theory]
    [InlineData("4242424242424241")] // fails the Luhn check
    [InlineData("424242424242")] // 12 digits
    [InlineData("42424242424242424242")] // 20 digits glued together: not a card number
    [InlineData("4242  4242 4242 4242")] // two spaces end a run: 4 + 12 digits
    [InlineData("4242.4242.4242.4242")]
    [InlineData("amount 1250, 2026-12-07, order 42")]
    [InlineData("550e8400-e29b-41d4-a716-446655440000")]
    [InlineData("")]
    public void Redact_NoCardNumber_SameInstanceReturned(string text)
        => Assert.Same(text, Redactor.Redact(text));

    [Fact]
    public void Redact_SpanOverload_SameResultAsStringOverload()
    {
        var source = "pay 4111 1111 1111 1111 now";
        var destination = new char[Redactor.GetRedactedLength(source)];
        var written = Redactor.Redact(source.AsSpan(), destination);
        Assert.Equal(source.Length, written);
        Assert.Equal("pay **** **** **** 1111 now", new string(destination));
    }

    [Fact]
    public void Redact_TwoCardNumbersInOneRun_BothMasked()
        => Assert.Equal("************4242 ************1111", Redactor.Redact("4242424242424242 4111111111111111"));

    // Properties. A generated card number: a prefix of 12 to 18 random digits completed by its Luhn check digit.
    private static readonly Gen<string> CardNumber = Gen.Int[12, 18].SelectMany(n => Gen.Char['0', '9'].Array[n]).Select(digits => new string(digits) + LuhnCheckDigit(digits));

    // Text that cannot join a digit run: letters, punctuation, and space or dash only when not between digits.
    private static readonly Gen<string> Filler = Gen.Char["abcxyzABC.,:;\"'{}[]()/_=+"].Array[0, 12].Select(c => new string(c));

    // A card number spelled in groups: digits with single spaces or dashes between some of them.
    private static readonly Gen<(string Card, string Text)> Spelled = CardNumber.SelectMany(card => Gen.Int[0, 3].Array[card.Length - 1].Select(seps =>
    {
        var text = new StringBuilder();
        for (var i = 0; i < card.Length; i++)
        {
            text.Append(card[i]);
            if (i < card.Length - 1)
            {
                text.Append(seps[i] switch { 1 => " ", 2 => "-", _ => string.Empty });
            }
        }

        return (Card: card, Text: text.ToString());
    }));

    [Fact]
    public void Redact_AnyLuhnValidCardNumberInAnyText_NeverWritten_LastFourKept_LengthKept()
    {
        Gen.Select(Filler, Spelled, Filler).Sample((before, spelled, after) =>
        {
            var (card, written) = spelled;
            var text = before + written + after;
            var redacted = Redactor.Redact(text);
            Assert.Equal(text.Length, redacted.Length);
            Assert.DoesNotContain(card, Digits(redacted), StringComparison.Ordinal);
            Assert.False(PrimaryAccountNumberRedactor.ContainsPrimaryAccountNumber(redacted));
            Assert.EndsWith(card[^4..], Digits(redacted[..(before.Length + written.Length)]), StringComparison.Ordinal);
            Assert.Equal(before, redacted[..before.Length]);
            Assert.Equal(after, redacted[^after.Length..]);
        });
    }

    [Fact]
    public void Redact_NumberFailingLuhn_Kept()
    {
        Gen.Select(Filler, CardNumber, Gen.Int[1, 9], Filler).Sample((before, card, shift, after) =>
        {
            var wrong = card[..^1] + (char)('0' + ((card[^1] - '0' + shift) % 10));
            var text = before + wrong + after;
            Assert.Same(text, Redactor.Redact(text));
        });
    }

    [Fact]
    public void Redact_AnyText_IdempotentAndLengthPreserving()
    {
        Gen.String.Sample(text =>
        {
            var once = Redactor.Redact(text);
            Assert.Equal(text.Length, once.Length);
            Assert.Equal(once, Redactor.Redact(once));
        });
    }

    [Fact]
    public void Redact_TextWithFewerThanThirteenDigits_Unchanged()
    {
        Gen.String.Where(s => s.Count(PrimaryAccountNumbers.IsDigit) < 13).Sample(text => Assert.Same(text, Redactor.Redact(text)));
    }

    [Fact]
    public void AddRedaction_PrimaryAccountNumberRedactorMapped_ResolvedAndApplied()
    {
        var classification = new DataClassification("App", "FreeText");
        using var services = new ServiceCollection().AddRedaction(r => r.SetRedactor<PrimaryAccountNumberRedactor>(classification)).BuildServiceProvider();
        var redactor = services.GetRequiredService<IRedactorProvider>().GetRedactor(classification);
        Assert.IsType<PrimaryAccountNumberRedactor>(redactor);
        Assert.Equal("card ************4242", redactor.Redact("card 4242424242424242"));
    }

    private static string Digits(string text) => new([.. text.Where(char.IsAsciiDigit)]);

    private static char LuhnCheckDigit(char[] digits)
    {
        var sum = 0;
        for (var i = 0; i < digits.Length; i++)
        {
            var d = digits[digits.Length - 1 - i] - '0';
            if (i % 2 == 0)
            {
                d *= 2;
                if (d > 9)
                {
                    d -= 9;
                }
            }

            sum += d;
        }

        return (char)('0' + ((10 - (sum % 10)) % 10));
    }
}
