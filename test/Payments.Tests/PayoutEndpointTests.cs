using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Oncely.MassTransit.Tests.Infrastructure;
using Payments.Payouts;

namespace Payments.Tests;

/// <summary>
/// Issue 17, item 14: <c>POST /payouts</c> sends a payout message to the running sample's own consumer (in memory here;
/// <see cref="PayoutRabbitMqTests"/> does it over RabbitMQ), and a retried request never pays out twice.
/// </summary>
public sealed class PayoutEndpointTests
{
    [Fact]
    public async Task Payout_PostedThenRetriedWithTheSameKey_202ReplayedAndMoneyMovedOnce()
    {
        await using var host = await PaymentsHost.StartAsync();
        using var client = host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        var body = new { from = alice.Id, to = bob.Id, amount = 100, currency = "EUR", reference = "payout-http" };
        var key = Guid.NewGuid().ToString();

        using var sent = await PaymentsHost.PostAsync(client, PayoutEndpoint.Path, body, key);
        await BalanceBecomesAsync(client, bob.Id, 100);
        using var retried = await PaymentsHost.PostAsync(client, PayoutEndpoint.Path, body, key);

        Assert.Equal(HttpStatusCode.Accepted, sent.StatusCode);
        var accepted = await sent.Content.ReadFromJsonAsync<PayoutAccepted>();
        Assert.Equal(PayoutMessaging.Queue, accepted!.Queue);
        Assert.NotEqual(Guid.Empty, accepted.MessageId);
        Assert.Equal(HttpStatusCode.Accepted, retried.StatusCode);
        Assert.Equal("true", Assert.Single(retried.Headers.GetValues("Idempotent-Replayed")));
        Assert.Equal(accepted, await retried.Content.ReadFromJsonAsync<PayoutAccepted>());
        await Task.Delay(200); // room for a second payout, were one sent
        Assert.Equal(1, host.Services.GetRequiredService<PayoutRuns>().Count);
        Assert.Equal(900, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
        Assert.Equal(100, (await PaymentsHost.GetAccountAsync(client, bob.Id)).Balance);
        Assert.True((await host.Ledger.CheckAsync()).IsBalanced);
    }

    [Fact]
    public async Task Payout_OtherTenantsAccounts_TheConsumerRefusesAndMovesNothing()
    {
        await using var host = await PaymentsHost.StartAsync();
        using var owner = host.Client(PaymentsHost.TenantA);
        using var other = host.Client(PaymentsHost.TenantB);
        var alice = await PaymentsHost.CreateAccountAsync(owner, "alice", deposit: 1000);
        var mallory = await PaymentsHost.CreateAccountAsync(other, "mallory");

        using var sent = await PaymentsHost.PostAsync(other, PayoutEndpoint.Path, new { from = alice.Id, to = mallory.Id, amount = 100, currency = "EUR" });
        await Eventually.HoldsAsync(() => host.Services.GetRequiredService<PayoutRuns>().Count == 1, "the payout message is consumed");

        // The message carries the caller's tenant, so another tenant's account is unknown to it.
        Assert.Equal(HttpStatusCode.Accepted, sent.StatusCode);
        Assert.Equal(1000, (await PaymentsHost.GetAccountAsync(owner, alice.Id)).Balance);
        Assert.Equal(0, (await PaymentsHost.GetAccountAsync(other, mallory.Id)).Balance);
    }

    internal static Task BalanceBecomesAsync(HttpClient client, string account, long balance)
        => Eventually.HoldsAsync(async () => (await PaymentsHost.GetAccountAsync(client, account)).Balance == balance, $"account {account} holds {balance}");
}
