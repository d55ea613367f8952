using System.Text;
using System.Text.Json;

namespace Oncely.Tests.Auditing;

/// <summary>The audit payload's value-based card-number masking (issue 19): whatever a member is called.</summary>
public class IdempotencyPayloadRedactorCardNumberTests
{
    private static string Redact(string payload, string? contentType = "application/json") => IdempotencyPayloadRedactor.Redact(contentType, Encoding.UTF8.GetBytes(payload));

    [Fact]
    public void Redact_CardNumbersInStringsNumbersArraysAndNames_MaskedToLastFour_NonLuhnKept()
    {
        var kept = Redact("""
            {"reference":"ref 4242 4242 4242 4242 x","note":"4111-1111-1111-1111","items":[{"n":[1,"amex 3782-822463-10005"]},6222000000000000004],
             "asNumber":4242424242424242,"exponent":4.242424242424242e15,"escaped":"\u0034\u0031\u0031\u0031111111111111","5555555555554444":true,
             "order":"4242424242424241","amount":1250}
            """);

        using var document = JsonDocument.Parse(kept);
        var root = document.RootElement;
        Assert.Equal("ref **** **** **** 4242 x", root.GetProperty("reference").GetString());
        Assert.Equal("****-****-****-1111", root.GetProperty("note").GetString());
        Assert.Equal("amex ****-******-*0005", root.GetProperty("items")[0].GetProperty("n")[1].GetString());
        Assert.Equal(1, root.GetProperty("items")[0].GetProperty("n")[0].GetInt32());
        Assert.Equal("***************0004", root.GetProperty("items")[1].GetString());
        Assert.Equal("************4242", root.GetProperty("asNumber").GetString());
        Assert.Equal("************4242", root.GetProperty("exponent").GetString());
        Assert.Equal("************1111", root.GetProperty("escaped").GetString());
        Assert.True(root.TryGetProperty("************4444", out _));
        Assert.Equal("4242424242424241", root.GetProperty("order").GetString());
        Assert.Equal(1250, root.GetProperty("amount").GetInt32());
        foreach (var card in new[] { "4242424242424242", "4111111111111111", "378282246310005", "6222000000000000004", "5555555555554444" })
        {
            Assert.DoesNotContain(card, new string([.. kept.Where(char.IsAsciiDigit)]), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Redact_NameMaskingStays_AndCardNumbersElsewhereMasked()
        => Assert.Equal("""{"cardNumber":"***","memo":"************4242"}""", Redact("""{"cardNumber":"4242424242424242","memo":"4242424242424242"}"""));

    [Fact]
    public void Redact_NonJsonSummary_ContentTypeMasked()
        => Assert.Equal("[3 bytes of text/plain; ref=************4242; not logged]", Redact("abc", "text/plain; ref=4242424242424242"));
}
