using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Oncely.Webhooks.Tests;

/// <summary>The signature itself, against the Standard Webhooks example vector and an independent implementation.</summary>
public sealed class StandardWebhookSignatureTests
{
    // The example in the Standard Webhooks specification and its reference libraries.
    private const string VectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    private const string VectorId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    private const long VectorTimestamp = 1614265330;
    private const string VectorBody = "{\"test\": 2432232314}";
    private const string VectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    [Fact]
    public void Sign_SpecificationVector_GivesTheSpecifiedSignature()
    {
        var signature = StandardWebhookSignature.Sign(VectorSecret, VectorId, DateTimeOffset.FromUnixTimeSeconds(VectorTimestamp), Encoding.UTF8.GetBytes(VectorBody));

        Assert.Equal(VectorSignature, signature);
    }

    [Fact]
    public void Sign_SecretWithoutPrefix_IsTheSameSecret()
    {
        var withPrefix = StandardWebhookSignature.Sign(VectorSecret, VectorId, DateTimeOffset.FromUnixTimeSeconds(VectorTimestamp), Encoding.UTF8.GetBytes(VectorBody));
        var without = StandardWebhookSignature.Sign(VectorSecret["whsec_".Length..], VectorId, DateTimeOffset.FromUnixTimeSeconds(VectorTimestamp), Encoding.UTF8.GetBytes(VectorBody));

        Assert.Equal(withPrefix, without);
    }

    [Fact]
    public void Sign_SecretWithoutPadding_SignsWithTheDecodedKey()
    {
        var key = Enumerable.Range(0, 32).Select(i => (byte)(200 - i)).ToArray();
        var unpadded = "whsec_" + Convert.ToBase64String(key).TrimEnd('=');
        var at = DateTimeOffset.FromUnixTimeSeconds(VectorTimestamp);

        var signature = StandardWebhookSignature.Sign(unpadded, VectorId, at, Encoding.UTF8.GetBytes(VectorBody));

        Assert.Equal(SignedWithKey(key, VectorId, VectorTimestamp, VectorBody), signature);
    }

    /// <summary>The signature computed from the raw key bytes, with nothing of Oncely's or the package's.</summary>
    internal static string SignedWithKey(byte[] key, string id, long timestamp, string body)
        => "v1," + Convert.ToBase64String(System.Security.Cryptography.HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{id}.{timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture)}.{body}")));

    [Theory]
    [InlineData("msg_1", "{}")]
    [InlineData("evt_ü", "{\"amount\":250,\"note\":\"café\"}")]
    [InlineData("x", "")]
    public void Sign_AnyDelivery_AgreesWithTheIndependentImplementation(string id, string body)
    {
        var at = new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

        var ours = StandardWebhookSignature.Sign(WebhookApp.AcmeNewSecret, id, at, Encoding.UTF8.GetBytes(body));
        var theirs = new StandardWebhooks.StandardWebhook(WebhookApp.AcmeNewSecret).Sign(id, at, body);

        Assert.Equal(theirs, ours);
    }

    [Fact]
    public void Sign_SecretNotBase64_Throws()
        => Assert.Throws<ArgumentException>(() => StandardWebhookSignature.Sign("whsec_***", "msg", DateTimeOffset.UnixEpoch, []));

    [Theory]
    [InlineData(32)] // one '=' left off
    [InlineData(31)] // two '=' left off
    public async Task Receiver_SecretWithoutBase64Padding_StartsAndVerifiesSignaturesMadeWithTheDecodedKey(int keyBytes)
    {
        var key = Enumerable.Range(0, keyBytes).Select(i => (byte)((i * 13) + 5)).ToArray();
        var unpadded = "whsec_" + Convert.ToBase64String(key).TrimEnd('=');
        Assert.NotEqual(0, (unpadded.Length - "whsec_".Length) % 4);
        await using var app = await WebhookApp.StartAsync(
            o => o.AddSender("unpadded", unpadded),
            map: a => a.MapPost("/unpadded", () => Results.Ok()).AcceptStandardWebhooks("unpadded"));
        var now = app.Clock.GetUtcNow().ToUnixTimeSeconds();

        var signed = await app.SendAsync(WebhookApp.Unsigned("/unpadded", "msg_1", VectorBody, now.ToString(System.Globalization.CultureInfo.InvariantCulture), SignedWithKey(key, "msg_1", now, VectorBody)));
        var lastByteOff = key.ToArray();
        lastByteOff[^1] ^= 1;
        var otherKey = await app.SendAsync(WebhookApp.Unsigned("/unpadded", "msg_2", VectorBody, now.ToString(System.Globalization.CultureInfo.InvariantCulture), SignedWithKey(lastByteOff, "msg_2", now, VectorBody)));

        Assert.Equal(HttpStatusCode.OK, signed.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, otherKey.StatusCode);
    }

    [Fact]
    public async Task Receiver_SpecificationVectorAtItsTime_IsAccepted()
    {
        await using var app = await WebhookApp.StartAsync(
            o => o.AddSender("vector", VectorSecret),
            map: a => a.MapPost("/vector", () => Results.Ok()).AcceptStandardWebhooks("vector"),
            now: DateTimeOffset.FromUnixTimeSeconds(VectorTimestamp));

        var response = await app.SendAsync(WebhookApp.Unsigned("/vector", VectorId, VectorBody, VectorTimestamp.ToString(System.Globalization.CultureInfo.InvariantCulture), VectorSignature));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
