using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Oncely;
using Payments.Webhooks;

namespace Payments.Tests;

/// <summary>
/// Issue 17, item 11: one rule for validation failures on every endpoint, one-commit or not. A request the handler's
/// checks refuse is answered <c>400 validation-failed</c> and never recorded, so the corrected request with the same key
/// runs (Stripe's rule); until then a retry of the invalid request is refused afresh, never replayed.
/// </summary>
public sealed class ValidationRuleTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task CreateAccount_InvalidThenFixedWithTheSameKey_400NotRecordedThenExecutes(bool oneCommit)
    {
        await using var host = await PaymentsHost.StartAsync(oneCommit: oneCommit);
        using var client = host.Client();
        var key = Guid.NewGuid().ToString();

        using var invalid = await PaymentsHost.PostAsync(client, "/accounts", new { name = "alice", currency = "euro" }, key);
        var recorded = await RecordAsync(host, "tenant-a", "POST /accounts", key);
        using var again = await PaymentsHost.PostAsync(client, "/accounts", new { name = "alice", currency = "euro" }, key);
        using var fixedRequest = await PaymentsHost.PostAsync(client, "/accounts", new { name = "alice", currency = "EUR" }, key);

        await AssertRefusedAfreshAsync(invalid, again, recorded);
        Assert.Equal(HttpStatusCode.Created, fixedRequest.StatusCode);
        Assert.False(fixedRequest.Headers.Contains("Idempotent-Replayed"));
        var account = await fixedRequest.Content.ReadFromJsonAsync<Ledger.Account>();
        Assert.Equal("EUR", (await PaymentsHost.GetAccountAsync(client, account!.Id)).Currency);
        Assert.Equal(IdempotencyRecordState.Completed, (await RecordAsync(host, "tenant-a", "POST /accounts", key))?.State);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Deposit_InvalidThenFixedWithTheSameKey_400NotRecordedThenExecutes(bool oneCommit)
    {
        await using var host = await PaymentsHost.StartAsync(oneCommit: oneCommit);
        using var client = host.Client();
        var account = await PaymentsHost.CreateAccountAsync(client);
        var key = Guid.NewGuid().ToString();
        var path = $"/accounts/{account.Id}/deposits";

        using var invalid = await PaymentsHost.PostAsync(client, path, new { amount = 0 }, key);
        var recorded = await RecordAsync(host, "tenant-a", "POST /accounts/{id}/deposits", key);
        using var again = await PaymentsHost.PostAsync(client, path, new { amount = 0 }, key);
        using var fixedRequest = await PaymentsHost.PostAsync(client, path, new { amount = 300 }, key);

        await AssertRefusedAfreshAsync(invalid, again, recorded);
        Assert.Equal(HttpStatusCode.Created, fixedRequest.StatusCode);
        Assert.False(fixedRequest.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(300, (await PaymentsHost.GetAccountAsync(client, account.Id)).Balance);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Payment_InvalidThenFixedWithTheSameKey_400NotRecordedThenExecutes(bool oneCommit)
    {
        await using var host = await PaymentsHost.StartAsync(oneCommit: oneCommit);
        using var client = host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        var key = Guid.NewGuid().ToString();

        using var invalid = await PaymentsHost.PostAsync(client, "/payments", new { from = alice.Id, to = alice.Id, amount = 250, currency = "EUR" }, key);
        var recorded = await RecordAsync(host, "tenant-a", "POST /payments", key);
        using var again = await PaymentsHost.PostAsync(client, "/payments", new { from = alice.Id, to = alice.Id, amount = 250, currency = "EUR" }, key);
        using var fixedRequest = await PaymentsHost.PostAsync(client, "/payments", new { from = alice.Id, to = bob.Id, amount = 250, currency = "EUR" }, key);

        await AssertRefusedAfreshAsync(invalid, again, recorded);
        Assert.Equal(HttpStatusCode.Created, fixedRequest.StatusCode);
        Assert.False(fixedRequest.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(750, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
        Assert.Equal(1, await host.Ledger.CountPaymentsAsync());
    }

    [Fact]
    public async Task Payout_InvalidThenFixedWithTheSameKey_400NotRecordedThenExecutes()
    {
        await using var host = await PaymentsHost.StartAsync();
        using var client = host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        var key = Guid.NewGuid().ToString();

        using var invalid = await PaymentsHost.PostAsync(client, "/payouts", new { from = alice.Id, to = bob.Id, amount = 250, currency = "eur" }, key);
        var recorded = await RecordAsync(host, "tenant-a", "POST /payouts", key);
        using var again = await PaymentsHost.PostAsync(client, "/payouts", new { from = alice.Id, to = bob.Id, amount = 250, currency = "eur" }, key);
        using var fixedRequest = await PaymentsHost.PostAsync(client, "/payouts", new { from = alice.Id, to = bob.Id, amount = 250, currency = "EUR" }, key);

        await AssertRefusedAfreshAsync(invalid, again, recorded);
        Assert.Equal(HttpStatusCode.Accepted, fixedRequest.StatusCode);
        Assert.False(fixedRequest.Headers.Contains("Idempotent-Replayed"));
        await PayoutEndpointTests.BalanceBecomesAsync(client, alice.Id, 750);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Settlement_InvalidThenFixedWithTheSameDeliveryId_400NotRecordedThenExecutes(bool oneCommit)
    {
        await using var host = await PaymentsHost.StartAsync(oneCommit: oneCommit);
        using var client = host.Client();
        var account = await PaymentsHost.CreateAccountAsync(client);

        using var invalid = await SettlementWebhookTests.DeliverAsync(host, "msg_invalid", SettlementWebhookTests.Event("card_pay_1", account.Id, -5));
        var recorded = await RecordAsync(host, SettlementWebhook.Sender, "POST " + SettlementWebhook.Path, "msg_invalid");
        using var again = await SettlementWebhookTests.DeliverAsync(host, "msg_invalid", SettlementWebhookTests.Event("card_pay_1", account.Id, -5));
        using var fixedRequest = await SettlementWebhookTests.DeliverAsync(host, "msg_invalid", SettlementWebhookTests.Event("card_pay_1", account.Id, 5));

        await AssertRefusedAfreshAsync(invalid, again, recorded);
        Assert.Equal(HttpStatusCode.OK, fixedRequest.StatusCode);
        Assert.False(fixedRequest.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(5, (await PaymentsHost.GetAccountAsync(client, account.Id)).Balance);
    }

    private static async Task AssertRefusedAfreshAsync(HttpResponseMessage invalid, HttpResponseMessage again, IdempotencyRecord? recordAfterRefusal)
    {
        await EndpointTests.AssertProblemAsync(invalid, HttpStatusCode.BadRequest, "validation-failed");
        await EndpointTests.AssertProblemAsync(again, HttpStatusCode.BadRequest, "validation-failed");
        Assert.Null(recordAfterRefusal);
        Assert.False(again.Headers.Contains("Idempotent-Replayed"));
    }

    private static async Task<IdempotencyRecord?> RecordAsync(PaymentsHost host, string tenant, string operation, string key)
        => await host.Services.GetRequiredService<IIdempotencyStore>().GetAsync(new IdempotencyRecordId(tenant, operation, key), default);
}
