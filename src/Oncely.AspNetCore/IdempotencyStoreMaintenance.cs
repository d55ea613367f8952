using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Oncely.AspNetCore;

/// <summary>
/// Checks the options against the store's limits and creates the store's schema at start (stores that have one); then,
/// on a timer, purges expired records (stores without native expiry) and audit entries older than
/// <see cref="IdempotencyOptions.AuditRetention"/> (stores that keep an audit), in bounded batches
/// (<see cref="IdempotencyStoreMaintenanceLoop"/>).
/// </summary>
internal sealed class IdempotencyStoreMaintenance(
    IIdempotencyStore store,
    IOptions<IdempotencyOptions> options,
    TimeProvider clock,
    ILogger<IdempotencyStoreMaintenance> logger) : BackgroundService
{
    private readonly IIdempotencyStore _store = store;
    private readonly IdempotencyStoreMaintenanceLoop _loop = new(store, logger);

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        CheckLimits(_store, options.Value);
        await _loop.InitializeAsync(cancellationToken).ConfigureAwait(false);
        await base.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        return _loop.RunAsync(settings.PurgeInterval, settings.PurgeBatchSize, settings.AuditRetention, clock, stoppingToken);
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

    /// <summary>One purge of expired records now, without waiting for the timer (tests drive it).</summary>
    internal Task<int> PurgeAsync(IIdempotencyStoreSweeper sweeper, int batchSize, CancellationToken cancellationToken)
        => _loop.PurgeExpiredAsync(sweeper, batchSize, cancellationToken).AsTask();
}
