using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Oncely.Webhooks;
using Payments.Webhooks;

namespace Payments.Tests;

/// <summary>The settlement webhook: signed deliveries credit an account exactly once per delivery id.</summary>
public sealed class SettlementWebhookTests
{
    [Fact]
    public async Task Settlement_SignedDeliveryThenRedelivery_CreditsOnceAndReplaysTheAnswer()
    {
        await using var host = await PaymentsHost.StartAsync();
        using var client = host.Client();
        var account = await PaymentsHost.CreateAccountAsync(client);
        var settled = Event("card_pay_1", account.Id, 700);

        var first = await DeliverAsync(host, "msg_1", settled);
        var redelivered = await DeliverAsync(host, "msg_1", settled);

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal("true", redelivered.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(await first.Content.ReadAsStringAsync(), await redelivered.Content.ReadAsStringAsync());
        Assert.Equal(700, JsonDocument.Parse(await first.Content.ReadAsStringAsync()).RootElement.GetProperty("balance").GetInt64());
        Assert.Equal(700, (await PaymentsHost.GetAccountAsync(client, account.Id)).Balance);
        Assert.Equal(1, await CountSettlementsAsync(host, "card_pay_1"));
        Assert.True((await host.Ledger.CheckAsync()).IsBalanced);
    }

    [Fact]
    public async Task Settlement_DuplicatesInParallel_CreditedOnce()
    {
        await using var host = await PaymentsHost.StartAsync();
        using var client = host.Client();
        var account = await PaymentsHost.CreateAccountAsync(client);
        var settled = Event("card_pay_dup", account.Id, 500);
        using var start = new ManualResetEventSlim();

        var deliveries = Enumerable.Range(0, 6).Select(_ => Task.Run(async () =>
        {
            start.Wait();
            return await DeliverAsync(host, "msg_dup", settled);
        })).ToArray();
        start.Set();
        var answers = await Task.WhenAll(deliveries);

        Assert.Equal(1, await CountSettlementsAsync(host, "card_pay_dup"));
        Assert.Equal(500, (await PaymentsHost.GetAccountAsync(client, account.Id)).Balance);
        Assert.Single(answers, a => a.StatusCode == HttpStatusCode.OK && !a.Headers.Contains("Idempotent-Replayed"));
        Assert.All(answers, a => Assert.Contains(a.StatusCode, new[] { HttpStatusCode.OK, HttpStatusCode.Conflict }));
    }

    [Fact]
    public async Task Settlement_SignedWithAnotherSecret_401AndNothingCredited()
    {
        await using var host = await PaymentsHost.StartAsync();
        using var client = host.Client();
        var account = await PaymentsHost.CreateAccountAsync(client);

        var forged = await DeliverAsync(host, "msg_1", Event("card_pay_1", account.Id, 700), secret: "whsec_" + Convert.ToBase64String(new byte[32]));

        Assert.Equal(HttpStatusCode.Unauthorized, forged.StatusCode);
        Assert.Contains(StandardWebhooksProblemTypes.SignatureInvalid, await forged.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(0, (await PaymentsHost.GetAccountAsync(client, account.Id)).Balance);
        Assert.Equal(0, await CountSettlementsAsync(host, "card_pay_1"));
    }

    [Fact]
    public async Task Settlement_WithoutOncely_StillVerifiesTheSignatureButBooksEveryDelivery()
    {
        await using var host = await PaymentsHost.StartAsync(idempotency: false);
        using var client = host.Client();
        var account = await PaymentsHost.CreateAccountAsync(client);
        var settled = Event("card_pay_1", account.Id, 700);

        var forged = await DeliverAsync(host, "msg_1", settled, secret: "whsec_" + Convert.ToBase64String(new byte[32]));
        await DeliverAsync(host, "msg_1", settled);
        await DeliverAsync(host, "msg_1", settled);

        // The baseline the demo measures: a redelivery credits again.
        Assert.Equal(HttpStatusCode.Unauthorized, forged.StatusCode);
        Assert.Equal(2, await CountSettlementsAsync(host, "card_pay_1"));
    }

    [Fact]
    public async Task Settlement_UnknownAccount_404StoredAndReplayed()
    {
        await using var host = await PaymentsHost.StartAsync();
        var settled = Event("card_pay_1", "acc_nobody", 700);

        var refused = await DeliverAsync(host, "msg_1", settled);
        var again = await DeliverAsync(host, "msg_1", settled);

        Assert.Equal(HttpStatusCode.NotFound, refused.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
        Assert.Equal("true", again.Headers.GetValues("Idempotent-Replayed").Single());
    }

    [Fact]
    public async Task Settlement_SameDeliveryIdOtherAmount_422AndTheFirstCreditKept()
    {
        await using var host = await PaymentsHost.StartAsync();
        using var client = host.Client();
        var account = await PaymentsHost.CreateAccountAsync(client);
        await DeliverAsync(host, "msg_1", Event("card_pay_1", account.Id, 700));

        var changed = await DeliverAsync(host, "msg_1", Event("card_pay_1", account.Id, 7000));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, changed.StatusCode);
        Assert.Equal(700, (await PaymentsHost.GetAccountAsync(client, account.Id)).Balance);
    }

    [Fact]
    public async Task Settlement_InvalidEvent_400NotRecordedSoTheCorrectedDeliveryRuns()
    {
        await using var host = await PaymentsHost.StartAsync();
        using var client = host.Client();
        var account = await PaymentsHost.CreateAccountAsync(client);

        var invalid = await DeliverAsync(host, "msg_1", Event("card_pay_1", account.Id, -5));
        var corrected = await DeliverAsync(host, "msg_1", Event("card_pay_1", account.Id, 5));

        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        Assert.Equal(HttpStatusCode.OK, corrected.StatusCode);
        Assert.Equal(5, (await PaymentsHost.GetAccountAsync(client, account.Id)).Balance);
    }

    internal static string Event(string payment, string account, long amount)
        => JsonSerializer.Serialize(new { type = "payment.settled", timestamp = "2026-01-01T00:00:00Z", data = new { payment, account, amount, currency = "EUR" } });

    internal static async Task<HttpResponseMessage> DeliverAsync(PaymentsHost host, string id, string body, string secret = PaymentsHost.WebhookSecret)
    {
        using var client = host.Client(apiKey: null);
        var now = TimeProvider.System.GetUtcNow();
        using var request = new HttpRequestMessage(HttpMethod.Post, SettlementWebhook.Path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Add("webhook-id", id);
        request.Headers.Add("webhook-timestamp", now.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture));
        request.Headers.Add("webhook-signature", StandardWebhookSignature.Sign(secret, id, now, Encoding.UTF8.GetBytes(body)));
        var response = await client.SendAsync(request);
        await response.Content.LoadIntoBufferAsync();
        return response;
    }

    private static async Task<long> CountSettlementsAsync(PaymentsHost host, string payment)
    {
        await using var connection = await host.Ledger.Dialect.OpenAsync(default);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*) FROM settlements WHERE provider_payment = @payment";
        var parameter = command.CreateParameter();
        parameter.ParameterName = "@payment";
        parameter.Value = payment;
        command.Parameters.Add(parameter);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }
}
