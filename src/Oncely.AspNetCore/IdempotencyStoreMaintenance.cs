using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Oncely.AspNetCore;

/// <summary>
/// Checks the options against the store's limits and creates the store's schema at start (stores that have one); then,
/// on a timer, purges expired records (stores without native expiry) and audit entries older than
/// <see cref="IdempotencyOptions.AuditRetention"/> (stores that keep an audit), in bounded batches.
/// </summary>
internal sealed partial class IdempotencyStoreMaintenance(
    IIdempotencyStore store,
    IOptions<IdempotencyOptions> options,
    TimeProvider clock,
    ILogger<IdempotencyStoreMaintenance> logger) : BackgroundService
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        CheckLimits(store, options.Value);
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
                    await PurgeAsync(sweeper, settings.PurgeBatchSize, stoppingToken).ConfigureAwait(false);
                }

                if (audit is not null)
                {
                    await PurgeAuditAsync(audit, settings.AuditRetention, settings.PurgeBatchSize, stoppingToken).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Refuses, at start, options the store cannot honour (<see cref="IIdempotencyStoreLimits"/>), so the mistake stops
    /// the host with a message that says what to change instead of failing requests at run time.
    /// </summary>
    /// <exception cref="InvalidOperationException">An option exceeds the store's limit.</exception>
    internal static void CheckLimits(IIdempotencyStore store, IdempotencyOptions settings)
    {
        if (store is IIdempotencyStoreLimits limits && settings.MaxKeyLength > limits.MaxKeyLength)
        {
            throw new InvalidOperationException(
                $"Oncely: MaxKeyLength is {settings.MaxKeyLength}, but the idempotency store {store.GetType().Name} can index keys of at most {limits.MaxKeyLength} characters. " +
                $"Set MaxKeyLength to {limits.MaxKeyLength} or less (the default, 255, fits every store).");
        }
    }

    internal async Task<int> PurgeAuditAsync(IIdempotencyAuditStore audit, TimeSpan retention, int batchSize, CancellationToken cancellationToken)
    {
        var total = 0;
        try
        {
            int purged;
            do
            {
                purged = await audit.PurgeAuditAsync(retention, batchSize, cancellationToken).ConfigureAwait(false);
                total += purged;
            }
            while (purged == batchSize && !cancellationToken.IsCancellationRequested);

            if (total > 0)
            {
                LogAuditPurged(logger, total, retention);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogMaintenanceFailed(logger, ex, "purge of old key-reuse audit entries");
        }

        return total;
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

    [LoggerMessage(IdempotencyEventIds.AuditPurged, LogLevel.Debug, "Purged {Count} key-reuse audit entries older than {Retention}")]
    private static partial void LogAuditPurged(ILogger logger, int count, TimeSpan retention);

    [LoggerMessage(IdempotencyEventIds.MaintenanceFailed, LogLevel.Warning, "Idempotency store maintenance failed: {Task}")]
    private static partial void LogMaintenanceFailed(ILogger logger, Exception exception, string task);
}
