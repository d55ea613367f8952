using System.Net;
using System.Text.Json;

namespace Oncely.Webhooks.Tests;

/// <summary>Standard Webhooks deliveries through a real pipeline: verified first, then run once per sender and event id.</summary>
public sealed class StandardWebhookReceiverTests
{
    private const string Problems = "https://oncely.dev/problems/";
    private const string Settled = "{\"type\":\"payment.settled\",\"timestamp\":\"2026-11-24T12:00:00Z\",\"data\":{\"id\":\"pay_1\",\"amount\":250}}";

    internal static async Task<JsonElement> ProblemOf(HttpResponseMessage response, string type)
    {
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(Problems + type, problem.GetProperty("type").GetString());
        Assert.Equal((int)response.StatusCode, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("detail").GetString()));
        return problem;
    }

    [Fact]
    public async Task Delivery_SignedByAKnownSender_RunsOnceAndIsRecordedUnderTheSender()
    {
        await using var app = await WebhookApp.StartAsync();

        var response = await app.SendAsync(app.Delivery("/webhooks/payments", "msg_1", Settled, WebhookApp.GlobexSecret));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(Settled.Length, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("received").GetInt32());
        Assert.Equal(1, app.CallsTo("payments"));
        var record = await app.Store.GetAsync(app.RecordId("globex", "/webhooks/payments", "msg_1"), default);
        Assert.Equal(IdempotencyRecordState.Completed, record?.State);
        Assert.Contains(app.LoggedEvents, e => e.Id == IdempotencyEventIds.WebhookVerified);
    }

    [Fact]
    public async Task Redelivery_SameIdSameBodyFreshSignature_ReplaysTheStoredAnswerWithoutRunningTheHandler()
    {
        await using var app = await WebhookApp.StartAsync();
        var first = await app.SendAsync(app.Delivery("/webhooks/payments", "msg_1", Settled, WebhookApp.AcmeNewSecret));

        // The provider retries a minute later: same id and body, new timestamp and signature.
        app.Clock.Advance(TimeSpan.FromMinutes(1));
        var second = await app.SendAsync(app.Delivery("/webhooks/payments", "msg_1", Settled, WebhookApp.AcmeNewSecret));

        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal("true", second.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(await first.Content.ReadAsStringAsync(), await second.Content.ReadAsStringAsync());
        Assert.Equal(1, app.CallsTo("payments"));
    }

    [Fact]
    public async Task Redelivery_SameIdOtherBody_422KeyReusedAndTheFirstRecordKept()
    {
        await using var app = await WebhookApp.StartAsync();
        await app.SendAsync(app.Delivery("/webhooks/payments", "msg_1", Settled, WebhookApp.AcmeNewSecret));

        var other = await app.SendAsync(app.Delivery("/webhooks/payments", "msg_1", Settled.Replace("250", "999", StringComparison.Ordinal), WebhookApp.AcmeNewSecret));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, other.StatusCode);
        await ProblemOf(other, "idempotency-key-reused");
        Assert.Equal(1, app.CallsTo("payments"));
        Assert.Equal(IdempotencyRecordState.Completed, (await app.Store.GetAsync(app.RecordId("acme", "/webhooks/payments", "msg_1"), default))?.State);
    }

    [Fact]
    public async Task CardNumbersInADelivery_NeverReachTheLogNorTheAudit_WhateverTheFieldIsCalled()
    {
        await using var app = await WebhookApp.StartAsync();
        const string first = "{\"type\":\"payment.settled\",\"timestamp\":\"2026-11-24T12:00:00Z\",\"data\":{\"id\":\"pay_1\",\"amount\":250,\"memo\":\"card 4111 1111 1111 1111\"}}";
        const string reused = "{\"type\":\"payment.settled\",\"timestamp\":\"2026-11-24T12:00:00Z\",\"data\":{\"id\":\"pay_1\",\"amount\":999,\"memo\":\"card 5555-5555-5555-4444\",\"n\":4242424242424242}}";

        Assert.Equal(HttpStatusCode.OK, (await app.SendAsync(app.Delivery("/webhooks/payments", "msg_card", first, WebhookApp.AcmeNewSecret))).StatusCode);
        Assert.Equal("true", (await app.SendAsync(app.Delivery("/webhooks/payments", "msg_card", first, WebhookApp.AcmeNewSecret))).Headers.GetValues("Idempotent-Replayed").Single());
        var refused = await app.SendAsync(app.Delivery("/webhooks/payments", "msg_card", reused, WebhookApp.AcmeNewSecret));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.StatusCode);
        Assert.Equal(1, app.CallsTo("payments"));
        var audit = Assert.Single((await app.Store.ListAuditAsync(new KeyReuseAuditQuery(), default)).Entries);
        Assert.Contains("****-****-****-4444", audit.Payload, StringComparison.Ordinal); // the refused payload is kept, masked
        var log = string.Join('\n', app.LoggedTexts);
        Assert.Contains("msg_card", log, StringComparison.Ordinal); // positive control: the capture holds the receiver's lines
        Assert.Contains("****-****-****-4444", log, StringComparison.Ordinal);
        foreach (var card in new[] { "4111 1111 1111 1111", "4111111111111111", "5555-5555-5555-4444", "5555555555554444", "4242424242424242" })
        {
            Assert.DoesNotContain(card, log, StringComparison.Ordinal);
            Assert.DoesNotContain(card, audit.Payload, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task TwoSenders_SameEventId_AreTwoRecordsAndBothRun()
    {
        await using var app = await WebhookApp.StartAsync();

        var acme = await app.SendAsync(app.Delivery("/webhooks/payments", "evt_shared", Settled, WebhookApp.AcmeOldSecret));
        var globex = await app.SendAsync(app.Delivery("/webhooks/payments", "evt_shared", Settled, WebhookApp.GlobexSecret));

        Assert.False(acme.Headers.Contains("Idempotent-Replayed"));
        Assert.False(globex.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(2, app.CallsTo("payments"));
        Assert.NotNull(await app.Store.GetAsync(app.RecordId("acme", "/webhooks/payments", "evt_shared"), default));
        Assert.NotNull(await app.Store.GetAsync(app.RecordId("globex", "/webhooks/payments", "evt_shared"), default));
        Assert.Equal(2, app.Store.Count);
    }

    [Fact]
    public async Task ConcurrentDuplicateDeliveries_RunExactlyOnce()
    {
        await using var app = await WebhookApp.StartAsync();
        var deliveries = Enumerable.Range(0, 8).Select(_ => app.Delivery("/webhooks/slow", "msg_dup", Settled, WebhookApp.AcmeNewSecret)).ToArray();
        using var start = new ManualResetEventSlim();
        var sends = deliveries.Select(d => Task.Run(async () =>
        {
            start.Wait();
            return await app.SendAsync(d);
        })).ToArray();
        start.Set();

        // The first delivery holds the key inside the handler; every duplicate meanwhile is told to come back later.
        await app.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        using (var patience = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        {
            while (sends.Count(s => s.IsCompleted) < 7)
            {
                await Task.Delay(10, patience.Token);
            }
        }

        app.Gate.SetResult();
        var answers = await Task.WhenAll(sends);

        Assert.Equal(1, app.CallsTo("slow"));
        Assert.Single(answers, a => a.StatusCode == HttpStatusCode.OK);
        Assert.All(answers.Where(a => a.StatusCode != HttpStatusCode.OK), a =>
        {
            Assert.Equal(HttpStatusCode.Conflict, a.StatusCode);
            Assert.Equal("1", a.Headers.RetryAfter!.ToString());
        });

        // The provider's next attempt gets the stored answer.
        var retry = await app.SendAsync(app.Delivery("/webhooks/slow", "msg_dup", Settled, WebhookApp.AcmeNewSecret));
        Assert.Equal("true", retry.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(1, app.CallsTo("slow"));
    }

    public static TheoryData<string, string?, string?, string?> BadSignatures() => new()
    {
        { "no signature header", "msg_1", "now", null },
        { "no id header", null, "now", "sign" },
        { "no timestamp header", "msg_1", null, "sign" },
        { "timestamp not integer seconds", "msg_1", "1795521600.5", "sign" },
        { "negative timestamp", "msg_1", "-1795521600", "sign" },
        { "empty v1 signature", "msg_1", "now", "v1," },
        { "signature not base64", "msg_1", "now", "v1,not*base64!" },
        { "signature of the wrong length", "msg_1", "now", "v1,AAAA" },
        { "only an unknown version", "msg_1", "now", "v1a,sign" },
        { "no version", "msg_1", "now", "bare" },
        { "signed for another id", "msg_1", "now", "sign-other-id" },
        { "signed for another timestamp", "msg_1", "now", "sign-other-timestamp" },
        { "body changed after signing", "msg_1", "now", "sign-other-body" },
    };

    [Theory]
    [MemberData(nameof(BadSignatures))]
    public async Task Delivery_BadSignatureOrHeaders_401SignatureInvalidAndNothingRecorded(string why, string? id, string? timestamp, string? signature)
    {
        await using var app = await WebhookApp.StartAsync();
        var now = app.Clock.GetUtcNow();
        var seconds = now.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture);
        var signer = new StandardWebhooks.StandardWebhook(WebhookApp.AcmeNewSecret);
        var header = signature switch
        {
            "sign" => signer.Sign("msg_1", now, Settled),
            "sign-other-id" => signer.Sign("msg_2", now, Settled),
            "sign-other-timestamp" => signer.Sign("msg_1", now.AddSeconds(1), Settled),
            "sign-other-body" => signer.Sign("msg_1", now, Settled + " "),
            "v1a,sign" => "v1a," + signer.Sign("msg_1", now, Settled)[3..],
            "bare" => signer.Sign("msg_1", now, Settled)[3..],
            _ => signature,
        };

        var response = await app.SendAsync(WebhookApp.Unsigned("/webhooks/payments", id, Settled, timestamp == "now" ? seconds : timestamp, header));

        Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, why);
        await ProblemOf(response, StandardWebhooksProblemTypes.SignatureInvalid);
        Assert.Equal(0, app.CallsTo("payments"));
        Assert.Equal(0, app.Store.Count);
        Assert.Contains(app.LoggedEvents, e => e.Id == IdempotencyEventIds.WebhookSignatureInvalid);
    }

    [Fact]
    public async Task Delivery_SignedWithASecretNoSenderHas_401AndNothingRecorded()
    {
        await using var app = await WebhookApp.StartAsync();

        var response = await app.SendAsync(app.Delivery("/webhooks/payments", "msg_1", Settled, WebhookApp.StrangerSecret));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var problem = await ProblemOf(response, StandardWebhooksProblemTypes.SignatureInvalid);
        Assert.DoesNotContain("whsec_", problem.GetProperty("detail").GetString()!.Replace("(whsec_…)", string.Empty, StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.Equal(0, app.CallsTo("payments"));
        Assert.Equal(0, app.Store.Count);
    }

    [Fact]
    public async Task Delivery_SignedByASenderTheEndpointDoesNotAccept_401()
    {
        await using var app = await WebhookApp.StartAsync();

        var response = await app.SendAsync(app.Delivery("/webhooks/acme-only", "msg_1", Settled, WebhookApp.GlobexSecret));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(0, app.CallsTo("acme-only"));
        Assert.Equal(0, app.Store.Count);
    }

    [Theory]
    [InlineData(-301)]
    [InlineData(301)]
    [InlineData(-86_400)]
    public async Task Delivery_TimestampOutsideTheTolerance_401OutOfToleranceAndNothingRecorded(int offsetSeconds)
    {
        await using var app = await WebhookApp.StartAsync();

        var response = await app.SendAsync(app.Delivery("/webhooks/payments", "msg_1", Settled, WebhookApp.AcmeNewSecret, app.Clock.GetUtcNow().AddSeconds(offsetSeconds)));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        await ProblemOf(response, StandardWebhooksProblemTypes.TimestampOutOfTolerance);
        Assert.Equal(0, app.CallsTo("payments"));
        Assert.Equal(0, app.Store.Count);
        Assert.Contains(app.LoggedEvents, e => e.Id == IdempotencyEventIds.WebhookTimestampOutOfTolerance);
    }

    [Theory]
    [InlineData(-300)]
    [InlineData(300)]
    public async Task Delivery_TimestampAtTheEdgeOfTheTolerance_Accepted(int offsetSeconds)
    {
        await using var app = await WebhookApp.StartAsync();

        var response = await app.SendAsync(app.Delivery("/webhooks/payments", "msg_1", Settled, WebhookApp.AcmeNewSecret, app.Clock.GetUtcNow().AddSeconds(offsetSeconds)));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Delivery_ReplayedCaptureAfterTheTolerance_401ThoughTheFirstWasAccepted()
    {
        await using var app = await WebhookApp.StartAsync();
        var signedAt = app.Clock.GetUtcNow();
        Assert.Equal(HttpStatusCode.OK, (await app.SendAsync(app.Delivery("/webhooks/payments", "msg_1", Settled, WebhookApp.AcmeNewSecret, signedAt))).StatusCode);

        app.Clock.Advance(TimeSpan.FromMinutes(6));
        var replayed = await app.SendAsync(app.Delivery("/webhooks/payments", "msg_1", Settled, WebhookApp.AcmeNewSecret, signedAt));

        Assert.Equal(HttpStatusCode.Unauthorized, replayed.StatusCode);
        await ProblemOf(replayed, StandardWebhooksProblemTypes.TimestampOutOfTolerance);
    }

    [Fact]
    public async Task Delivery_ConfiguredTolerance_IsTheOneApplied()
    {
        await using var app = await WebhookApp.StartAsync(o => o.TimestampTolerance = TimeSpan.FromSeconds(30));

        var late = await app.SendAsync(app.Delivery("/webhooks/payments", "msg_1", Settled, WebhookApp.AcmeNewSecret, app.Clock.GetUtcNow().AddSeconds(-31)));
        var inTime = await app.SendAsync(app.Delivery("/webhooks/payments", "msg_2", Settled, WebhookApp.AcmeNewSecret, app.Clock.GetUtcNow().AddSeconds(-30)));

        Assert.Equal(HttpStatusCode.Unauthorized, late.StatusCode);
        Assert.Equal(HttpStatusCode.OK, inTime.StatusCode);
    }

    [Fact]
    public async Task Rotation_OldAndNewSecretsOfOneSender_BothAcceptedAndOneScope()
    {
        await using var app = await WebhookApp.StartAsync();

        var old = await app.SendAsync(app.Delivery("/webhooks/payments", "msg_1", Settled, WebhookApp.AcmeOldSecret));
        var renewed = await app.SendAsync(app.Delivery("/webhooks/payments", "msg_1", Settled, WebhookApp.AcmeNewSecret));

        Assert.Equal(HttpStatusCode.OK, old.StatusCode);
        Assert.Equal("true", renewed.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(1, app.CallsTo("payments"));
    }

    [Theory]
    [InlineData("unknown first")]
    [InlineData("unknown last")]
    [InlineData("unknown middle")]
    public async Task Rotation_SenderSignsWithSeveralSecrets_AnyMatchingSignatureIsAccepted(string order)
    {
        await using var app = await WebhookApp.StartAsync();
        var now = app.Clock.GetUtcNow();
        var known = new StandardWebhooks.StandardWebhook(WebhookApp.AcmeNewSecret).Sign("msg_1", now, Settled);
        var unknown = new StandardWebhooks.StandardWebhook(WebhookApp.StrangerSecret).Sign("msg_1", now, Settled);
        var header = order switch
        {
            "unknown first" => $"{unknown} {unknown} {known}",
            "unknown last" => $"{known} {unknown}",
            _ => $"{unknown} {known} v1a,c29tZXRoaW5n {unknown}",
        };

        var response = await app.SendAsync(WebhookApp.Unsigned("/webhooks/payments", "msg_1", Settled, now.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture), header));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, app.CallsTo("payments"));
    }

    [Fact]
    public async Task Delivery_SignedWebhookIdBreaksTheKeyRules_400KeyInvalid()
    {
        await using var app = await WebhookApp.StartAsync();

        var response = await app.SendAsync(app.Delivery("/webhooks/payments", new string('m', 256), Settled, WebhookApp.AcmeNewSecret));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await ProblemOf(response, "idempotency-key-invalid");
        Assert.Contains("webhook-id", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, app.Store.Count);
    }

    [Fact]
    public async Task KeyFromBody_SameDataIdUnderTwoDeliveryIds_RunsOnce()
    {
        await using var app = await WebhookApp.StartAsync();

        // A provider that sends the same event twice under two delivery ids: the event id in the body is the key.
        await app.SendAsync(app.Delivery("/webhooks/by-data-id", "msg_a", Settled, WebhookApp.AcmeNewSecret));
        var second = await app.SendAsync(app.Delivery("/webhooks/by-data-id", "msg_b", Settled, WebhookApp.AcmeNewSecret));

        Assert.Equal("true", second.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(1, app.CallsTo("by-data-id"));
        Assert.NotNull(await app.Store.GetAsync(app.RecordId("acme", "/webhooks/by-data-id", "pay_1"), default));
    }

    [Theory]
    [InlineData("{\"type\":\"payment.settled\",\"data\":{}}", "idempotency-key-missing")]
    [InlineData("{\"type\":\"payment.settled\",\"data\":{\"id\":17}}", "idempotency-key-invalid")]
    [InlineData("{\"type\":\"payment.settled\",\"data\":{\"id\":\"pay 1\"}}", "idempotency-key-invalid")]
    public async Task KeyFromBody_MissingOrUnusableMemberInAValidDelivery_400AndNothingRecorded(string body, string type)
    {
        await using var app = await WebhookApp.StartAsync();

        var response = await app.SendAsync(app.Delivery("/webhooks/by-data-id", "msg_a", body, WebhookApp.AcmeNewSecret));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await ProblemOf(response, type);
        Assert.Equal(0, app.CallsTo("by-data-id"));
        Assert.Equal(0, app.Store.Count);
    }

    [Fact]
    public async Task KeyFromBody_BadSignature_401BeforeTheBodyIsLookedAt()
    {
        await using var app = await WebhookApp.StartAsync();

        var response = await app.SendAsync(app.Delivery("/webhooks/by-data-id", "msg_a", "{\"data\":{}}", WebhookApp.StrangerSecret));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Fact]
    public async Task HandlerCrash_RecordReleased_TheProvidersNextAttemptRunsIt()
    {
        await using var app = await WebhookApp.StartAsync();

        var crashed = await app.SendAsync(app.Delivery("/webhooks/crash-once", "msg_1", Settled, WebhookApp.AcmeNewSecret));
        var retried = await app.SendAsync(app.Delivery("/webhooks/crash-once", "msg_1", Settled, WebhookApp.AcmeNewSecret));
        var again = await app.SendAsync(app.Delivery("/webhooks/crash-once", "msg_1", Settled, WebhookApp.AcmeNewSecret));

        Assert.Equal(HttpStatusCode.InternalServerError, crashed.StatusCode);
        Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
        Assert.Equal("true", again.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(2, app.CallsTo("crash-once"));
    }
}
