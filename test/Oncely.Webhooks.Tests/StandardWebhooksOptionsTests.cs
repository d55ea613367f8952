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
    public async Task Start_NamedPolicyExpirationNotLongerThanTwiceTolerance_StopsTheApplicationNamingEndpointAndPolicy()
    {
        // The global Expiration (24 h) is fine; the endpoint's own policy keeps records for 8 minutes, less than the
        // 10 minutes a captured delivery stays acceptable (signed up to 5 minutes ahead, accepted until 5 minutes after).
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => WebhookApp.StartAsync(
            map: app => app.MapPost("/hooks/short", () => Results.Ok()).AcceptStandardWebhooks("acme").RequireIdempotencyKey("webhooks"),
            idempotency: o => o.AddPolicy("webhooks", p => p.Expiration = TimeSpan.FromMinutes(8))));

        Assert.Contains("/hooks/short", error.Message, StringComparison.Ordinal);
        Assert.Contains("policy 'webhooks'", error.Message, StringComparison.Ordinal);
        Assert.Contains("TimestampTolerance", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_AttributePolicyExpirationNotLongerThanTwiceTolerance_StopsTheApplication()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => WebhookApp.StartAsync(
            map: app => app.MapPost("/mvc-style", () => Results.Ok())
                .WithMetadata(new IdempotentAttribute { KeyHeader = "webhook-id", Policy = "webhooks" }, new StandardWebhookAttribute("globex")),
            idempotency: o => o.AddPolicy("webhooks", p => p.Expiration = TimeSpan.FromMinutes(9))));

        Assert.Contains("/mvc-style", error.Message, StringComparison.Ordinal);
        Assert.Contains("policy 'webhooks'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_ExpirationExactlyTwiceTolerance_StopsTheApplication()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => WebhookApp.StartAsync(
            o => o.TimestampTolerance = TimeSpan.FromMinutes(5),
            idempotency: o => o.Expiration = TimeSpan.FromMinutes(10)));

        Assert.Contains("/webhooks/payments", error.Message, StringComparison.Ordinal);
        Assert.Contains("IdempotencyOptions.Expiration", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_ExpirationLongerThanTwiceTolerance_StartsAndReceives()
    {
        await using var app = await WebhookApp.StartAsync(
            o => o.TimestampTolerance = TimeSpan.FromMinutes(5),
            map: a => a.MapPost("/hooks/policy", () => Results.Ok()).AcceptStandardWebhooks("acme").RequireIdempotencyKey("webhooks"),
            idempotency: o =>
            {
                o.Expiration = TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(1);
                o.AddPolicy("webhooks", p => p.Expiration = TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(1));
            });

        var response = await app.SendAsync(app.Delivery("/hooks/policy", "msg_1", "{}", WebhookApp.AcmeNewSecret));

        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Start_ShortGlobalExpirationButWebhookPolicyLongEnough_Starts()
    {
        // Each webhook endpoint's own expiration is what counts: the global one serves only other endpoints here.
        await using var app = await WebhookApp.StartAsync(
            map: a =>
            {
                a.MapPost("/hooks/policy", () => Results.Ok()).AcceptStandardWebhooks("acme").RequireIdempotencyKey("webhooks");
                a.MapPost("/payments", () => Results.Ok()).RequireIdempotencyKey();
            },
            idempotency: o =>
            {
                o.Expiration = TimeSpan.FromMinutes(4);
                o.AddPolicy("webhooks", p => p.Expiration = TimeSpan.FromDays(3));
            });

        var response = await app.SendAsync(app.Delivery("/hooks/policy", "msg_1", "{}", WebhookApp.AcmeNewSecret));

        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
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
