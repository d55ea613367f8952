using System.Text;

namespace Oncely.Tests.Auditing;

public class IdempotencyPayloadRedactorTests
{
    private static string Redact(string? contentType, string payload) => IdempotencyPayloadRedactor.Redact(contentType, Encoding.UTF8.GetBytes(payload));

    [Theory]
    [InlineData("card")]
    [InlineData("cardNumber")]
    [InlineData("CVC")]
    [InlineData("cvv2")]
    [InlineData("pan")]
    [InlineData("userPassword")]
    [InlineData("passwd")]
    [InlineData("client_secret")]
    [InlineData("apiToken")]
    [InlineData("IBAN")]
    [InlineData("accountNumber")]
    [InlineData("account_number")]
    [InlineData("pin")]
    [InlineData("ssn")]
    [InlineData("Authorization")]
    [InlineData("shippingAddress")] // "pin": names match as substrings, harmless ones included
    public void Redact_JsonMemberWithSensitiveName_ValueMaskedOthersKept(string name)
    {
        var redacted = Redact("application/json", $$"""{"amount":999,"{{name}}":"4242424242424242","note":"gift"}""");

        Assert.Equal($$"""{"amount":999,"{{name}}":"***","note":"gift"}""", redacted);
    }

    [Fact]
    public void Redact_SensitiveMemberHoldingObjectsAndArrays_EveryValueUnderItMasked()
    {
        var redacted = Redact("application/json", """{"card":{"number":"4242","expiry":{"month":12,"year":2030},"holders":["a",null,true]},"amount":1}""");

        Assert.Equal("""{"card":{"number":"***","expiry":{"month":"***","year":"***"},"holders":["***","***","***"]},"amount":1}""", redacted);
    }

    [Fact]
    public void Redact_SensitiveMembersNestedInArrays_MaskedShapeKept()
    {
        var redacted = Redact("application/problem+json; charset=utf-8", """[{"id":1,"token":"t-1"},{"id":2,"token":null},3]""");

        Assert.Equal("""[{"id":1,"token":"***"},{"id":2,"token":"***"},3]""", redacted);
    }

    [Fact]
    public void Redact_JsonWithoutSensitiveNames_CompactCopyInMemberOrder()
    {
        var redacted = Redact("application/json", """{ "zeta": [1, 2.50, "x"], "alpha": { "ok": false, "none": null } }""");

        Assert.Equal("""{"zeta":[1,2.50,"x"],"alpha":{"ok":false,"none":null}}""", redacted);
    }

    [Theory]
    [InlineData("text/plain", "card=4242424242424242", "[21 bytes of text/plain; not logged]")]
    [InlineData("application/x-www-form-urlencoded", "pin=1234", "[8 bytes of application/x-www-form-urlencoded; not logged]")]
    [InlineData(null, """{"card":"4242"}""", "[15 bytes of unknown content; not logged]")]
    public void Redact_NotJson_SummarisedByLengthOnly(string? contentType, string payload, string expected)
    {
        Assert.Equal(expected, Redact(contentType, payload));
    }

    [Fact]
    public void Redact_MalformedJson_SummarisedByLengthOnly()
    {
        Assert.Equal("[19 bytes of malformed JSON; not logged]", Redact("application/json", """{"card":"4242424242"""));
    }

    [Fact]
    public void Redact_EmptyPayload_Empty()
    {
        Assert.Equal(string.Empty, IdempotencyPayloadRedactor.Redact("application/json", ReadOnlyMemory<byte>.Empty));
    }
}
