using System.Collections.Concurrent;
using MassTransit;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Oncely.MassTransit;
using Payments.Payouts;

namespace Payments.Tests;

/// <summary>The sample's payout consumer on its default in-memory bus, the ledger and the records in one SQLite file.</summary>
public sealed class PayoutConsumerTests
{
    [Fact]
    public async Task Payout_DeliveredTwice_MovesMoneyOnce()
    {
        await using var host = await PaymentsHost.StartAsync();
        var (from, to) = await AccountsAsync(host);
        var deliveries = new Deliveries(host.Services.GetRequiredService<IBus>());
        var id = NewId.NextGuid();

        await SendAsync(host, id, new PayoutRequested(from, to, 700, "EUR", "payout-twice"));
        await SendAsync(host, id, new PayoutRequested(from, to, 700, "EUR", "payout-twice"));
        await deliveries.WaitAsync(consumed: 2);

        Assert.Equal(1, host.Services.GetRequiredService<PayoutRuns>().Count);
        Assert.Equal(1_000 - 700, (await PaymentsHost.GetAccountAsync(host.Client(), from)).Balance);
        Assert.Equal(700, (await PaymentsHost.GetAccountAsync(host.Client(), to)).Balance);
        Assert.True((await host.Ledger.CheckAsync()).IsBalanced);
    }

    [Fact]
    public async Task Payout_SameMessageIdOtherAmount_FaultsWithoutMovingMoneyAndIsAudited()
    {
        await using var host = await PaymentsHost.StartAsync();
        var (from, to) = await AccountsAsync(host);
        var deliveries = new Deliveries(host.Services.GetRequiredService<IBus>());
        var id = NewId.NextGuid();

        await SendAsync(host, id, new PayoutRequested(from, to, 300, "EUR", "payout-first"));
        await deliveries.WaitAsync(consumed: 1);
        await SendAsync(host, id, new PayoutRequested(from, to, 900, "EUR", "payout-second"));
        await deliveries.WaitAsync(consumed: 1, faulted: 1);

        var fault = Assert.IsType<IdempotentMessageRejectedException>(Assert.Single(deliveries.Faults));
        Assert.Equal(MessageRejection.KeyReused, fault.Reason);
        Assert.Equal(1, host.Services.GetRequiredService<PayoutRuns>().Count);
        Assert.Equal(1_000 - 300, (await PaymentsHost.GetAccountAsync(host.Client(), from)).Balance);
        await using var connection = new SqliteConnection(host.Services.GetRequiredService<PaymentsSettings>().ConnectionString);
        await connection.OpenAsync();
        await using var audit = connection.CreateCommand();
        // Stored encrypted (the sample protects stored answers and audit payloads); operators read it decrypted.
        audit.CommandText = "SELECT COUNT(*) FROM oncely_key_reuse_audit WHERE idem_key = @k AND payload LIKE 'oncely-protected:v1:%'";
        audit.Parameters.AddWithValue("@k", id.ToString());
        Assert.Equal(1L, await audit.ExecuteScalarAsync());
        using var admin = host.Client(PaymentsHost.Operator);
        var entries = System.Text.Json.JsonDocument.Parse(await admin.GetStringAsync($"/admin/idempotency/audit?key={id}")).RootElement.GetProperty("entries");
        Assert.Contains("payout-second", Assert.Single(entries.EnumerateArray()).GetProperty("payload").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Payout_DeliveredTwiceWithoutIdempotency_MovesMoneyTwice()
    {
        await using var host = await PaymentsHost.StartAsync(idempotency: false);
        var (from, to) = await AccountsAsync(host);
        var deliveries = new Deliveries(host.Services.GetRequiredService<IBus>());
        var id = NewId.NextGuid();

        await SendAsync(host, id, new PayoutRequested(from, to, 300, "EUR", "payout-twice"));
        await SendAsync(host, id, new PayoutRequested(from, to, 300, "EUR", "payout-twice"));
        await deliveries.WaitAsync(consumed: 2);

        // The double payout the consume filter prevents.
        Assert.Equal(2, host.Services.GetRequiredService<PayoutRuns>().Count);
        Assert.Equal(1_000 - 600, (await PaymentsHost.GetAccountAsync(host.Client(), from)).Balance);
        Assert.Equal(600, (await PaymentsHost.GetAccountAsync(host.Client(), to)).Balance);
    }

    private static async Task<(string From, string To)> AccountsAsync(PaymentsHost host)
    {
        var client = host.Client();
        var from = await PaymentsHost.CreateAccountAsync(client, "payer", deposit: 1_000);
        var to = await PaymentsHost.CreateAccountAsync(client, "payee");
        return (from.Id, to.Id);
    }

    private static async Task SendAsync(PaymentsHost host, Guid messageId, PayoutRequested payout)
    {
        var endpoint = await host.Services.GetRequiredService<IBus>().GetSendEndpoint(new Uri($"queue:{PayoutMessaging.Queue}"));
        await endpoint.Send(payout, context =>
        {
            context.MessageId = messageId;
            context.Headers.Set(PayoutMessaging.TenantHeader, "tenant-a");
        });
    }

    /// <summary>Counts the deliveries the bus acknowledged as consumed and the ones that faulted (after retries).</summary>
    private sealed class Deliveries : IReceiveObserver
    {
        private int _consumed;

        public Deliveries(IBus bus) => bus.ConnectReceiveObserver(this);

        public ConcurrentQueue<Exception> Faults { get; } = new();

        public async Task WaitAsync(int consumed, int faulted = 0)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            while (Volatile.Read(ref _consumed) < consumed || Faults.Count < faulted)
            {
                await Task.Delay(20, timeout.Token);
            }
        }

        public Task PreReceive(ReceiveContext context) => Task.CompletedTask;

        public Task PostReceive(ReceiveContext context) => Task.CompletedTask;

        public Task PostConsume<T>(ConsumeContext<T> context, TimeSpan duration, string consumerType)
            where T : class
        {
            Interlocked.Increment(ref _consumed);
            return Task.CompletedTask;
        }

        public Task ConsumeFault<T>(ConsumeContext<T> context, TimeSpan duration, string consumerType, Exception exception)
            where T : class
        {
            Faults.Enqueue(exception);
            return Task.CompletedTask;
        }

        public Task ReceiveFault(ReceiveContext context, Exception exception) => Task.CompletedTask;
    }
}
