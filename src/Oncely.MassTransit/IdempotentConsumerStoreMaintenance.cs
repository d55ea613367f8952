using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Oncely.MassTransit;

/// <summary>
/// For a worker without ASP.NET Core: creates the store's schema at start (stores that have one), then purges expired
/// records and old key-reuse audit entries every <see cref="IdempotentConsumerOptions.PurgeInterval"/>, in batches.
/// In an application that also runs Oncely's HTTP maintenance both purge; the deletes are idempotent.
/// </summary>
internal sealed partial class IdempotentConsumerStoreMaintenance(
    IIdempotencyStore store,
    IOptions<IdempotentConsumerOptions> options,
    TimeProvider clock,
    ILogger<IdempotentConsumerStoreMaintenance> logger) : BackgroundService
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        if (store is IIdempotencyStoreInitializer initializer)
        {
            try
            {
                await initializer.InitializeAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Not fatal: the store initialises lazily, and until then messages fail closed and are retried.
                LogMaintenanceFailed(logger, ex, "schema creation");
            }
        }

        await base.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var sweeper = store as IIdempotencyStoreSweeper;
        var audit = store as IIdempotencyAuditStore;
        if (sweeper is null && audit is null)
        {
            return;
        }

        var settings = options.Value;
        using var timer = new PeriodicTimer(settings.PurgeInterval, clock);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                if (sweeper is not null)
                {
                    await PurgeAsync("purge of expired records", ct => sweeper.PurgeExpiredAsync(settings.PurgeBatchSize, ct), settings.PurgeBatchSize, stoppingToken).ConfigureAwait(false);
                }

                if (audit is not null)
                {
                    await PurgeAsync("purge of old key-reuse audit entries", ct => audit.PurgeAuditAsync(settings.AuditRetention, settings.PurgeBatchSize, ct), settings.PurgeBatchSize, stoppingToken).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task PurgeAsync(string task, Func<CancellationToken, ValueTask<int>> batch, int batchSize, CancellationToken cancellationToken)
    {
        try
        {
            int purged;
            do
            {
                purged = await batch(cancellationToken).ConfigureAwait(false);
            }
            while (purged == batchSize && !cancellationToken.IsCancellationRequested);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogMaintenanceFailed(logger, ex, task);
        }
    }

    [LoggerMessage(IdempotencyEventIds.MaintenanceFailed, LogLevel.Warning, "Idempotency store maintenance failed: {Task}")]
    private static partial void LogMaintenanceFailed(ILogger logger, Exception exception, string task);
}
