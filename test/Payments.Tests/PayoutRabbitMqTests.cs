using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Oncely.MassTransit.Tests.Infrastructure;
using Payments.Ledger;
using Payments.Payouts;

namespace Payments.Tests;

/// <summary>The sample configured for a real broker (<c>--Payments:Broker=RabbitMq</c>), against a private RabbitMQ.</summary>
[Collection(RabbitMqCollection.Name)]
public sealed class PayoutRabbitMqTests(RabbitMqFixture broker)
{
    [Fact]
    public async Task Payout_OnRabbitMq_SentTwiceWithOneMessageId_MovesMoneyOnce()
    {
        var directory = Directory.CreateTempSubdirectory("payments-rabbitmq-").FullName;
        var app = Build(directory);
        try
        {
            await app.StartAsync();
            var ledger = app.Services.GetRequiredService<LedgerRepository>();
            var (from, to) = await AccountsAsync(ledger);
            var bus = app.Services.GetRequiredService<IBus>();
            var consumed = new ConsumedCounter();
            bus.ConnectReceiveObserver(consumed);
            var endpoint = await bus.GetSendEndpoint(new Uri($"queue:{PayoutMessaging.Queue}"));
            var id = NewId.NextGuid();
            for (var copy = 0; copy < 2; copy++)
            {
                await endpoint.Send(new PayoutRequested(from, to, 250, "EUR", "payout-rabbitmq"), context =>
                {
                    context.MessageId = id;
                    context.Headers.Set(PayoutMessaging.TenantHeader, "tenant-a");
                });
            }

            await Eventually.HoldsAsync(() => consumed[id] == 2, "both deliveries are acknowledged", details: () => consumed.Faults);

            Assert.Equal(1, app.Services.GetRequiredService<PayoutRuns>().Count);
            Assert.Equal(1_000 - 250, (await ledger.GetAccountAsync("tenant-a", from, CancellationToken.None))!.Balance);
            Assert.Equal(250, (await ledger.GetAccountAsync("tenant-a", to, CancellationToken.None))!.Balance);
            Assert.True((await ledger.CheckAsync()).IsBalanced);
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }

    // Issue 17, item 14: the way to try the RabbitMQ switch on the running sample (README: payout messages).
    [Fact]
    public async Task Payout_PostedOverHttpOnRabbitMq_202AndMoneyMovedOnceAlsoWhenRetried()
    {
        var directory = Directory.CreateTempSubdirectory("payments-rabbitmq-").FullName;
        var app = Build(directory);
        try
        {
            await app.StartAsync();
            var ledger = app.Services.GetRequiredService<LedgerRepository>();
            var (from, to) = await AccountsAsync(ledger);
            using var client = app.GetTestClient();
            client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", PaymentsHost.TenantA);
            var body = new { from, to, amount = 250, currency = "EUR", reference = "payout-rabbitmq-http" };

            using var sent = await PaymentsHost.PostAsync(client, PayoutEndpoint.Path, body, "payout-over-rabbitmq");
            await Eventually.HoldsAsync(async () => (await ledger.GetAccountAsync("tenant-a", to, CancellationToken.None))!.Balance == 250, "the payout is consumed from RabbitMQ");
            using var retried = await PaymentsHost.PostAsync(client, PayoutEndpoint.Path, body, "payout-over-rabbitmq");

            Assert.Equal(System.Net.HttpStatusCode.Accepted, sent.StatusCode);
            Assert.Equal(System.Net.HttpStatusCode.Accepted, retried.StatusCode);
            Assert.Equal("true", Assert.Single(retried.Headers.GetValues("Idempotent-Replayed")));
            await Task.Delay(500); // room for a second payout, were one sent
            Assert.Equal(1, app.Services.GetRequiredService<PayoutRuns>().Count);
            Assert.Equal(1_000 - 250, (await ledger.GetAccountAsync("tenant-a", from, CancellationToken.None))!.Balance);
            Assert.True((await ledger.CheckAsync()).IsBalanced);
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }

    private WebApplication Build(string directory)
    {
        var server = broker.Server;
        return PaymentsApp.Build(
            [
                $"--contentRoot={directory}",
                "--environment=Production",
                "--Payments:Database=Sqlite",
                $"--ConnectionStrings:Payments=Data Source={Path.Combine(directory, "payments.db")}",
                "--Payments:Broker=RabbitMq",
                $"--ConnectionStrings:Broker=amqp://{RabbitMqServer.User}:{RabbitMqServer.Password}@127.0.0.1:{server.Port}/{server.NewVirtualHost()}",
                $"--Payments:ApiKeys:{PaymentsHost.TenantA}=tenant-a",
            ],
            builder =>
            {
                builder.WebHost.UseTestServer();
                builder.Logging.ClearProviders();
            });
    }

    private static async Task<(string From, string To)> AccountsAsync(LedgerRepository ledger)
    {
        await using var write = await ledger.BeginAsync(CancellationToken.None);
        var from = await write.CreateAccountAsync("tenant-a", "payer", "EUR", CancellationToken.None);
        var to = await write.CreateAccountAsync("tenant-a", "payee", "EUR", CancellationToken.None);
        await write.DepositAsync("tenant-a", from.Id, 1_000, CancellationToken.None);
        await write.CommitAsync(CancellationToken.None);
        return (from.Id, to.Id);
    }
}
