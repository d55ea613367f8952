using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Oncely.AspNetCore;

/// <summary>
/// Creates the store's schema at start (stores that have one) and, for stores without native expiry, purges expired
/// records in bounded batches on a timer.
/// </summary>
internal sealed partial class IdempotencyStoreMaintenance(
    IIdempotencyStore store,
    IOptions<IdempotencyOptions> options,
    TimeProvider clock,
    ILogger<IdempotencyStoreMaintenance> logger) : BackgroundService
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
                // Not fatal: the store initialises lazily before its first operation, and until then requests fail closed.
                LogMaintenanceFailed(logger, ex, "schema creation");
            }
        }

        await base.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (store is not IIdempotencyStoreSweeper sweeper)
        {
            return;
        }

        var settings = options.Value;
        using var timer = new PeriodicTimer(settings.PurgeInterval, clock);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                await PurgeAsync(sweeper, settings.PurgeBatchSize, stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    internal async Task<int> PurgeAsync(IIdempotencyStoreSweeper sweeper, int batchSize, CancellationToken cancellationToken)
    {
        var total = 0;
        try
        {
            // Batches keep each delete short so reservations are never blocked for long.
            int purged;
            do
            {
                purged = await sweeper.PurgeExpiredAsync(batchSize, cancellationToken).ConfigureAwait(false);
                total += purged;
            }
            while (purged == batchSize && !cancellationToken.IsCancellationRequested);

            if (total > 0)
            {
                LogPurged(logger, total);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogMaintenanceFailed(logger, ex, "purge of expired records");
        }

        return total;
    }

    [LoggerMessage(IdempotencyEventIds.Purged, LogLevel.Debug, "Purged {Count} expired idempotency records")]
    private static partial void LogPurged(ILogger logger, int count);

    [LoggerMessage(IdempotencyEventIds.MaintenanceFailed, LogLevel.Warning, "Idempotency store maintenance failed: {Task}")]
    private static partial void LogMaintenanceFailed(ILogger logger, Exception exception, string task);
}
