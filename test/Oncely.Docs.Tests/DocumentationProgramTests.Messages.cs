using System.Text.RegularExpressions;
using MassTransit;
using Oncely.MassTransit.Tests.Infrastructure;
using Payouts.Contracts;

namespace Oncely.Docs.Tests;

public sealed partial class DocumentationProgramTests
{
    // docs/messages.md's worker on a real RabbitMQ: a payout consumed once, its redelivery (same MessageId) acknowledged
    // without moving money again.
    private static async Task MessagesWorkerAsync(ProgramRun run)
    {
        var rabbit = await run.Servers.RabbitMqAsync();
        var broker = new Uri($"amqp://{RabbitMqServer.User}:{RabbitMqServer.Password}@127.0.0.1:{rabbit.Port}/{rabbit.NewVirtualHost()}");
        var app = await run.StartAsync(new Dictionary<string, string>
        {
            ["ConnectionStrings:Broker"] = broker.ToString(),
            ["Logging:LogLevel:Oncely"] = "Debug", // the redelivery's "acknowledged without running" (event 1100) is a debug line
        });
        var database = Path.Combine(app.WorkingDirectory, "payouts.db");

        var bus = Bus.Factory.CreateUsingRabbitMq(cfg => cfg.Host(broker));
        using (var start = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            await bus.StartAsync(start.Token);
        }

        try
        {
            // The consumer's queue (PayoutConsumer → "Payout"), declared by the send if the worker has not yet.
            var endpoint = await bus.GetSendEndpoint(new Uri("queue:Payout"));
            var messageId = NewId.NextGuid();
            var payout = new PayoutRequested("acc-1", 500);

            await endpoint.Send(payout, context => Stamp(context, messageId));
            await WaitUntilAsync(async () => await CountRowsAsync(database, "payouts") == 1, $"the payout row in {database}");

            await endpoint.Send(payout, context => Stamp(context, messageId)); // the redelivery: same MessageId, same body
            await app.WaitForOutputAsync(
                new Regex($@"\[{Oncely.IdempotencyEventIds.MessageReplayed}\]\s*\n\s*Message with key {messageId}"),
                $"event {Oncely.IdempotencyEventIds.MessageReplayed} (acknowledged without running) for message {messageId}");
            Assert.Equal(1, await CountRowsAsync(database, "payouts"));
        }
        finally
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await bus.StopAsync(stop.Token);
        }
    }

    private static void Stamp(SendContext context, Guid messageId)
    {
        context.MessageId = messageId;
        context.Headers.Set("Tenant", "tenant-a");
    }
}

