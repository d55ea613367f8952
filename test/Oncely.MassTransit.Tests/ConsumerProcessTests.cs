using MassTransit;
using Oncely.MassTransit.Testing;
using Oncely.MassTransit.Tests.Infrastructure;

namespace Oncely.MassTransit.Tests;

/// <summary>
/// Real consumer processes (Oncely.MassTransit.ConsumerApp) on a real broker and a shared SQLite database: killed with
/// SIGKILL on either side of the business commit, and two of them racing a burst of duplicate publishes.
/// </summary>
[Collection(RabbitMqCollection.Name)]
public sealed class ConsumerProcessTests(RabbitMqFixture broker) : IDisposable
{
    /// <summary>128 + SIGKILL: what a process killed by signal 9 reports.</summary>
    private const int KilledBySigkill = 137;
    private const string Queue = "transfers";
    private readonly string _directory = Directory.CreateTempSubdirectory("oncely-mt-proc-").FullName;

    private RabbitMqServer Server => broker.Server;

    private string Database => Path.Combine(_directory, "ledger.db");

    [Fact]
    public async Task KilledAfterCommitBeforeAck_RedeliveryAcknowledgedWithoutRunning()
    {
        var (vhost, ledger) = await PrepareAsync();
        var id = Guid.NewGuid();
        var key = id.ToString();

        await using (var doomed = await ConsumerProcess.StartAsync(Server, vhost, Queue, Database, crashAt: "after-commit"))
        {
            await SendAsync(vhost, (id, new Transfer("acc-1", 100)));
            Assert.Equal(KilledBySigkill, await doomed.WaitForExitAsync());
        }

        // The effect and the completion are committed, but the broker never got the acknowledgement: the message is back.
        Assert.Equal(1, await ledger.EffectsAsync(key));
        await Eventually.HoldsAsync(async () => await Server.MessageCountAsync(vhost, Queue) == 1, "the unacknowledged message is back in the queue");

        await using var restarted = await ConsumerProcess.StartAsync(Server, vhost, Queue, Database);
        await Eventually.HoldsAsync(async () => await Server.MessageCountAsync(vhost, Queue) == 0, "the redelivery is taken", details: () => restarted.Output);
        await restarted.StopAsync();

        Assert.Equal(0, await Server.MessageCountAsync(vhost, Queue)); // acknowledged, not just in flight
        Assert.True(await Server.MessageCountAsync(vhost, Queue + "_error") <= 0, "nothing went to the error queue");
        Assert.Equal(1, await ledger.EffectsAsync(key));
        Assert.Equal(1, await ledger.RunsAsync(key));
    }

    [Fact]
    public async Task KilledBeforeCommit_RedeliveryRunsOnceAfterTheLease()
    {
        var (vhost, ledger) = await PrepareAsync();
        var id = Guid.NewGuid();
        var key = id.ToString();

        await using (var doomed = await ConsumerProcess.StartAsync(Server, vhost, Queue, Database, crashAt: "before-commit"))
        {
            await SendAsync(vhost, (id, new Transfer("acc-1", 100)));
            Assert.Equal(KilledBySigkill, await doomed.WaitForExitAsync());
        }

        // Nothing committed but the reservation, whose lease (2 s) the dead worker can no longer renew.
        Assert.Equal(0, await ledger.EffectsAsync(key));
        Assert.Equal(1, await ledger.RunsAsync(key));

        await using var restarted = await ConsumerProcess.StartAsync(Server, vhost, Queue, Database);
        await Eventually.HoldsAsync(async () => await ledger.EffectsAsync(key) == 1, "the redelivery takes the expired lease over and applies the transfer", details: () => restarted.Output);
        await Eventually.HoldsAsync(async () => await Server.MessageCountAsync(vhost, Queue) == 0, "the redelivery is taken");
        await restarted.StopAsync();

        Assert.Equal(0, await Server.MessageCountAsync(vhost, Queue));
        Assert.True(await Server.MessageCountAsync(vhost, Queue + "_error") <= 0, "nothing went to the error queue");
        Assert.Equal(1, await ledger.EffectsAsync(key));
        Assert.Equal(2, await ledger.RunsAsync(key));
    }

    [Fact]
    public async Task TwoProcesses_BurstOfDuplicatePublishes_ExactlyOneEffectPerMessageId()
    {
        const int Messages = 30;
        const int Copies = 3;
        var (vhost, ledger) = await PrepareAsync();
        await using var first = await ConsumerProcess.StartAsync(Server, vhost, Queue, Database, lease: TimeSpan.FromSeconds(10));
        await using var second = await ConsumerProcess.StartAsync(Server, vhost, Queue, Database, lease: TimeSpan.FromSeconds(10));

        // Every message id published three times, the copies interleaved so duplicates are in flight together.
        var ids = Enumerable.Range(0, Messages).Select(_ => Guid.NewGuid()).ToList();
        var burst = Enumerable.Range(0, Copies).SelectMany(_ => ids).Select((id, i) => (id, new Transfer($"acc-{i % Messages}", 100 + (i % Messages)))).ToArray();
        await SendAsync(vhost, burst);

        await Eventually.HoldsAsync(
            async () => await ledger.CountAsync("SELECT COUNT(DISTINCT message_key) FROM effects") == Messages && await Server.MessageCountAsync(vhost, Queue) == 0,
            "every message id has its effect and the queue is drained",
            TimeSpan.FromSeconds(60),
            () => first.Output + second.Output);
        await first.StopAsync();
        await second.StopAsync();

        Assert.Equal(0, await Server.MessageCountAsync(vhost, Queue)); // all acknowledged
        Assert.True(await Server.MessageCountAsync(vhost, Queue + "_error") <= 0, "nothing went to the error queue");
        Assert.Equal(Messages, await ledger.CountAsync("SELECT COUNT(*) FROM effects"));
        Assert.Equal(0, await ledger.CountAsync("SELECT COUNT(*) FROM (SELECT message_key FROM effects GROUP BY message_key HAVING COUNT(*) > 1)"));
        // Both processes were consuming; which one the broker hands each copy to is its choice (on a loaded machine one
        // process can take the whole burst), so only the effects above are the claim.
        Assert.InRange(await ledger.CountAsync("SELECT COUNT(DISTINCT process) FROM runs"), 1, 2);
    }

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private async Task<(string VirtualHost, TransferLedger Ledger)> PrepareAsync()
    {
        var ledger = new TransferLedger(TransferLedger.ConnectionStringFor(Database));
        await ledger.EnsureSchemaAsync();
        return (Server.NewVirtualHost(), ledger);
    }

    /// <summary>Sends from the test's own bus (no consumers), each message with the given message id.</summary>
    private async Task SendAsync(string virtualHost, params (Guid Id, Transfer Transfer)[] messages)
    {
        var bus = Bus.Factory.CreateUsingRabbitMq(cfg => cfg.Host(Server.HostAddress(virtualHost), h =>
        {
            h.Username(RabbitMqServer.User);
            h.Password(RabbitMqServer.Password);
        }));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await bus.StartAsync(timeout.Token);
        try
        {
            var endpoint = await bus.GetSendEndpoint(new Uri($"queue:{Queue}"));
            foreach (var (id, transfer) in messages)
            {
                await endpoint.Send(transfer, context => context.MessageId = id, timeout.Token);
            }
        }
        finally
        {
            await bus.StopAsync(timeout.Token);
        }
    }
}
