using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using Oncely.AspNetCore;

namespace Oncely.Webhooks.Tests;

/// <summary>Misconfigurations stop the application at start-up with a message that says what to change.</summary>
public sealed class StandardWebhooksOptionsTests
{
    [Fact]
    public void Validate_DefaultsWithOneGoodSender_NoProblems()
    {
        var options = new StandardWebhooksOptions().AddSender("acme", WebhookApp.AcmeNewSecret);

        Assert.Empty(options.Validate());
        Assert.Equal(TimeSpan.FromMinutes(5), options.TimestampTolerance);
    }

    [Theory]
    [InlineData("whsec_***", "not 'whsec_' followed by base64")]
    [InlineData("whsec_c2hvcnQ=", "at least 16")]
    [InlineData("", "not 'whsec_' followed by base64")]
    [InlineData("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwQ", "not 'whsec_' followed by base64")] // 33 characters: no padding completes it
    [InlineData("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS*", "not 'whsec_' followed by base64")]
    public void Validate_UnusableSecret_SaysWhatToChange(string secret, string expected)
    {
        var options = new StandardWebhooksOptions().AddSender("acme", secret);

        Assert.Contains(options.Validate(), p => p.Contains(expected, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(32)] // base64 ends in one '='
    [InlineData(31)] // base64 ends in "=="
    public void Validate_SecretWithoutBase64Padding_DecodesToTheSameKeyAsPadded(int keyBytes)
    {
        var padded = Convert.ToBase64String(Enumerable.Range(0, keyBytes).Select(i => (byte)(i * 7)).ToArray());
        Assert.EndsWith("=", padded, StringComparison.Ordinal);
        var options = new StandardWebhooksOptions().AddSender("acme", "whsec_" + padded.TrimEnd('=')).AddSender("globex", "whsec_" + padded);

        var problems = options.Validate();

        // Both decode, and to the same key: the two senders are told they share it.
        var problem = Assert.Single(problems);
        Assert.Contains("share a secret", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_SenderWithoutSecret_IsAProblem()
    {
        var options = new StandardWebhooksOptions();
        options.Senders["acme"] = new StandardWebhookSenderOptions();

        Assert.Contains(options.Validate(), p => p.Contains("no signing secret", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_TwoSendersShareASecret_IsAProblem()
    {
        var options = new StandardWebhooksOptions().AddSender("acme", WebhookApp.AcmeNewSecret).AddSender("globex", WebhookApp.AcmeNewSecret["whsec_".Length..]);

        Assert.Contains(options.Validate(), p => p.Contains("share a secret", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_ToleranceNotPositive_IsAProblem()
    {
        var options = new StandardWebhooksOptions { TimestampTolerance = TimeSpan.Zero }.AddSender("acme", WebhookApp.AcmeNewSecret);

        Assert.Contains(options.Validate(), p => p.Contains("TimestampTolerance", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Start_BadSecret_StopsTheApplication()
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => WebhookApp.StartAsync(o => o.AddSender("broken", "whsec_***")));

        Assert.Contains("broken", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_EndpointNamesAnUnconfiguredSender_StopsTheApplication()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => WebhookApp.StartAsync(
            map: app => app.MapPost("/hooks", () => Results.Ok()).AcceptStandardWebhooks("initech")));

        Assert.Contains("'initech'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_VerifierWithoutIdempotency_StopsTheApplication()
    {
        // Without idempotency metadata the middleware would never see the endpoint, so nothing would verify it.
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => WebhookApp.StartAsync(
            map: app => app.MapPost("/hooks", () => Results.Ok()).WithMetadata(new StandardWebhookAttribute("acme"))));

        Assert.Contains("not idempotent", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_ToleranceNotShorterThanExpiration_StopsTheApplication()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => WebhookApp.StartAsync(
            o => o.TimestampTolerance = TimeSpan.FromHours(2),
            idempotency: o => o.Expiration = TimeSpan.FromHours(1)));

        Assert.Contains("Expiration", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AcceptStandardWebhooks_NoSender_Throws()
    {
        var app = WebApplication.CreateSlimBuilder().Build();

        Assert.Throws<ArgumentException>(() => app.MapPost("/hooks", () => Results.Ok()).AcceptStandardWebhooks());
    }

    [Fact]
    public async Task Attribute_WithIdempotentKeyHeader_VerifiesLikeTheConvention()
    {
        await using var app = await WebhookApp.StartAsync(map: a => a.MapPost("/mvc-style", () => Results.Ok())
            .RequireIdempotencyKey()
            .WithMetadata(new IdempotentAttribute { KeyHeader = "webhook-id" }, new StandardWebhookAttribute("globex")));

        var unsigned = await app.SendAsync(WebhookApp.Unsigned("/mvc-style", "msg_1", "{}", "1", "v1,AAAA"));
        var signed = await app.SendAsync(app.Delivery("/mvc-style", "msg_1", "{}", WebhookApp.GlobexSecret));

        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, unsigned.StatusCode);
        Assert.Equal(System.Net.HttpStatusCode.OK, signed.StatusCode);
        Assert.NotNull(await app.Store.GetAsync(app.RecordId("globex", "/mvc-style", "msg_1"), default));
    }
}
