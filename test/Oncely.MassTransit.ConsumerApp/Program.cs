using System.Diagnostics;
using System.Globalization;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Oncely.MassTransit;
using Oncely.MassTransit.Testing;
using Oncely.Sqlite;

// Configuration comes from the environment: ONCELY_RABBIT (rabbitmq://127.0.0.1:PORT/VHOST), ONCELY_RABBIT_USER,
// ONCELY_RABBIT_PASSWORD, ONCELY_QUEUE, ONCELY_DB (the SQLite file), ONCELY_LEASE_MS, ONCELY_CONCURRENCY and, for a
// run that must die, ONCELY_CRASH_AT (before-commit | after-commit). It prints "ready" once the bus consumes, and stops
// gracefully when its standard input closes or says "stop".
var rabbit = new Uri(Required("ONCELY_RABBIT"));
var queue = Required("ONCELY_QUEUE");
var ledger = new TransferLedger(TransferLedger.ConnectionStringFor(Required("ONCELY_DB")));
var lease = TimeSpan.FromMilliseconds(int.Parse(Environment.GetEnvironmentVariable("ONCELY_LEASE_MS") ?? "2000", CultureInfo.InvariantCulture));
var concurrency = int.Parse(Environment.GetEnvironmentVariable("ONCELY_CONCURRENCY") ?? "4", CultureInfo.InvariantCulture);

var builder = Host.CreateApplicationBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.Services.AddSingleton(ledger);
if (Environment.GetEnvironmentVariable("ONCELY_CRASH_AT") is { Length: > 0 } crashAt)
{
    builder.Services.AddSingleton(new CrashHook(crashAt));
}

builder.Services.AddIdempotentConsumers(o => o.Lease = lease).UseSqlite(ledger.ConnectionString);
builder.Services.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
builder.Services.AddMassTransit(bus =>
{
    bus.AddConsumer<TransferConsumer>();
    bus.UsingRabbitMq((context, cfg) =>
    {
        cfg.Host(rabbit, h =>
        {
            h.Username(Required("ONCELY_RABBIT_USER"));
            h.Password(Required("ONCELY_RABBIT_PASSWORD"));
        });

        // Outside the idempotent filter: a duplicate in progress elsewhere (or a store outage) is tried again here until
        // the other delivery finishes or its lease runs out; a refusal no retry can change goes to the error queue.
        cfg.UseMessageRetry(r =>
        {
            r.Ignore<IdempotentMessageRejectedException>();
            r.Interval(200, TimeSpan.FromMilliseconds(100));
        });
        cfg.UseIdempotentConsumers(context);
        cfg.ReceiveEndpoint(queue, e =>
        {
            e.PrefetchCount = concurrency;
            e.ConcurrentMessageLimit = concurrency;
            e.ConfigureConsumer<TransferConsumer>(context);
        });
    });
});

using var host = builder.Build();
await ledger.EnsureSchemaAsync();
await host.StartAsync();
Console.WriteLine("ready");
while (await Console.In.ReadLineAsync() is { } line && line != "stop")
{
}

await host.StopAsync();
return 0;

static string Required(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : throw new InvalidOperationException($"Set {name}.");

/// <summary>Moves the money: the effect row and the record's completion commit in one SQLite transaction.</summary>
internal sealed class TransferConsumer(TransferLedger ledger, IServiceProvider services) : IConsumer<Transfer>
{
    public async Task Consume(ConsumeContext<Transfer> context)
    {
        var crash = services.GetService<CrashHook>();
        var key = context.GetIdempotencyExecution()?.Id.Key ?? throw new InvalidOperationException("The consumer runs without UseIdempotentConsumers.");
        await ledger.RecordRunAsync(key);

        await using var connection = await ledger.OpenAsync();
        await using var transaction = TransferLedger.BeginWrite(connection);
        await TransferLedger.InsertEffectAsync(connection, transaction, key, context.Message);
        await context.CompleteIdempotencyInTransactionAsync(transaction);
        crash?.At("before-commit");
        await transaction.CommitAsync();
        crash?.At("after-commit"); // the effect and the completion are durable; the broker has no acknowledgement yet
    }
}

/// <summary>Dies at once with SIGKILL at the configured point: no finally blocks, no acknowledgement, no graceful shutdown.</summary>
internal sealed class CrashHook(string point)
{
    public void At(string reached)
    {
        if (string.Equals(point, reached, StringComparison.Ordinal))
        {
            Console.Error.WriteLine($"crash hook: SIGKILL at {reached}");
            using var self = Process.GetCurrentProcess();
            self.Kill();
            Thread.Sleep(Timeout.Infinite);
        }
    }
}
