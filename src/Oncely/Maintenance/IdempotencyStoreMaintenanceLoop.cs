using Microsoft.Extensions.Logging;

namespace Oncely;

/// <summary>
/// The upkeep a host runs for its <see cref="IIdempotencyStore"/>: create the store's schema once at start (stores that
/// implement <see cref="IIdempotencyStoreInitializer"/>), then, on a timer, delete expired records
/// (<see cref="IIdempotencyStoreSweeper"/>) and key-reuse audit entries older than a retention
/// (<see cref="IIdempotencyAuditStore"/>), each in bounded batches repeated until one comes back short.
/// </summary>
/// <remarks>
/// Advanced: <c>AddIdempotency()</c> and <c>AddIdempotentConsumers()</c> run one from a single hosted service, registered
/// once however many transports an application uses; use it directly only to host a store without them (a bus built
/// with the store overload of <c>UseIdempotentConsumers</c>). A capability the store lacks is skipped. Failures never
/// throw: they are logged with event <see cref="IdempotencyEventIds.MaintenanceFailed"/> and the next tick tries again.
/// Several loops on one store (several instances of an application) are safe: the deletes are idempotent.
/// </remarks>
public sealed partial class IdempotencyStoreMaintenanceLoop
{
    private readonly IIdempotencyStore _store;
    private readonly ILogger _logger;

    /// <summary>Creates the upkeep of one store.</summary>
    /// <param name="store">The store to maintain.</param>
    /// <param name="logger">
    /// Where purges (events <see cref="IdempotencyEventIds.Purged"/> and <see cref="IdempotencyEventIds.AuditPurged"/>,
    /// debug) and failures (<see cref="IdempotencyEventIds.MaintenanceFailed"/>, warning) are logged.
    /// </param>
    public IdempotencyStoreMaintenanceLoop(IIdempotencyStore store, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(logger);
        _store = store;
        _logger = logger;
    }

    /// <summary>
    /// Creates or upgrades the store's schema, if it has one. A failure is logged, not thrown: the store initialises
    /// itself lazily before its first operation, and until then operations fail closed.
    /// </summary>
    /// <param name="cancellationToken">Cancels the call (the cancellation is thrown).</param>
    public async ValueTask InitializeAsync(CancellationToken cancellationToken)
    {
        if (_store is not IIdempotencyStoreInitializer initializer)
        {
            return;
        }

        try
        {
            await initializer.InitializeAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogMaintenanceFailed(_logger, IdempotencyRedaction.Exception(ex), "schema creation");
        }
    }

    /// <summary>
    /// Deletes expired records, <paramref name="batchSize"/> at a time, until a batch comes back short; returns how many
    /// were deleted (0 for a store that expires records itself). A failure is logged, not thrown.
    /// </summary>
    /// <param name="batchSize">The most records one delete removes; small batches keep reservations from waiting on a long delete.</param>
    /// <param name="cancellationToken">Stops between batches.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="batchSize"/> is not positive.</exception>
    public ValueTask<int> PurgeExpiredAsync(int batchSize, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        return _store is IIdempotencyStoreSweeper sweeper ? PurgeExpiredAsync(sweeper, batchSize, cancellationToken) : ValueTask.FromResult(0);
    }

    /// <summary>
    /// Deletes key-reuse audit entries older than <paramref name="retention"/> (by the store's clock),
    /// <paramref name="batchSize"/> at a time, until a batch comes back short; returns how many were deleted (0 for a
    /// store that keeps no audit). A failure is logged, not thrown.
    /// </summary>
    /// <param name="retention">How long an entry is kept.</param>
    /// <param name="batchSize">The most entries one delete removes.</param>
    /// <param name="cancellationToken">Stops between batches.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="retention"/> or <paramref name="batchSize"/> is not positive.</exception>
    public ValueTask<int> PurgeAuditAsync(TimeSpan retention, int batchSize, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(retention, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        return _store is IIdempotencyAuditStore audit ? PurgeAuditAsync(audit, retention, batchSize, cancellationToken) : ValueTask.FromResult(0);
    }

    /// <summary>
    /// Every <paramref name="interval"/>, runs <see cref="PurgeExpiredAsync(int, CancellationToken)"/> and then
    /// <see cref="PurgeAuditAsync(TimeSpan, int, CancellationToken)"/>, until <paramref name="cancellationToken"/> is
    /// cancelled (then it returns without throwing). Returns at once for a store with nothing to purge.
    /// </summary>
    /// <param name="interval">Time between two purges; the first runs one interval after the call.</param>
    /// <param name="batchSize">The most rows one delete removes.</param>
    /// <param name="retention">How long key-reuse audit entries are kept.</param>
    /// <param name="clock">The clock the timer runs on.</param>
    /// <param name="cancellationToken">Stops the loop.</param>
    /// <exception cref="ArgumentOutOfRangeException">An interval, batch size or retention is not positive.</exception>
    public async Task RunAsync(TimeSpan interval, int batchSize, TimeSpan retention, TimeProvider clock, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(clock);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(retention, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        using var timer = CreateTimer(interval, clock);
        await RunAsync(timer, batchSize, retention, cancellationToken).ConfigureAwait(false);
    }

    // The timer the loop waits on, or null for a store with nothing to purge. A host creates it when it starts, so the
    // first interval counts from the start and not from whenever the loop's thread gets going.
    internal PeriodicTimer? CreateTimer(TimeSpan interval, TimeProvider clock)
        => _store is IIdempotencyStoreSweeper or IIdempotencyAuditStore ? new PeriodicTimer(interval, clock) : null;

    // Runs the loop on a timer made by CreateTimer; the caller owns and disposes it.
    internal async Task RunAsync(PeriodicTimer? timer, int batchSize, TimeSpan retention, CancellationToken cancellationToken)
    {
        var sweeper = _store as IIdempotencyStoreSweeper;
        var audit = _store as IIdempotencyAuditStore;
        if (timer is null || (sweeper is null && audit is null))
        {
            return;
        }

        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                if (sweeper is not null)
                {
                    await PurgeExpiredAsync(sweeper, batchSize, cancellationToken).ConfigureAwait(false);
                }

                if (audit is not null)
                {
                    await PurgeAuditAsync(audit, retention, batchSize, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    // Internal so a host's tests can drive one purge of a given sweeper without waiting for the timer.
    internal async ValueTask<int> PurgeExpiredAsync(IIdempotencyStoreSweeper sweeper, int batchSize, CancellationToken cancellationToken)
    {
        var total = 0;
        try
        {
            int purged;
            do
            {
                purged = await sweeper.PurgeExpiredAsync(batchSize, cancellationToken).ConfigureAwait(false);
                total += purged;
            }
            while (purged == batchSize && !cancellationToken.IsCancellationRequested);

            if (total > 0)
            {
                LogPurged(_logger, total);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogMaintenanceFailed(_logger, IdempotencyRedaction.Exception(ex), "purge of expired records");
        }

        return total;
    }

    private async ValueTask<int> PurgeAuditAsync(IIdempotencyAuditStore audit, TimeSpan retention, int batchSize, CancellationToken cancellationToken)
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
                LogAuditPurged(_logger, total, retention);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogMaintenanceFailed(_logger, IdempotencyRedaction.Exception(ex), "purge of old key-reuse audit entries");
        }

        return total;
    }
}
