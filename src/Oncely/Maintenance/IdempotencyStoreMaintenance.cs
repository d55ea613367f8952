using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Oncely;

/// <summary>
/// The one hosted upkeep of the application's store, registered once however many transports the application runs: at
/// start it checks every transport's key length against the store's limits (<see cref="IdempotencyStoreLimitsCheck"/>)
/// and creates the store's schema (stores that have one); then, every <see cref="IdempotencyMaintenanceOptions.PurgeInterval"/>,
/// it purges expired records (stores without native expiry) and audit entries older than
/// <see cref="IdempotencyMaintenanceOptions.AuditRetention"/> (stores that keep an audit), in bounded batches
/// (<see cref="IdempotencyStoreMaintenanceLoop"/>).
/// </summary>
internal sealed class IdempotencyStoreMaintenance(
    IIdempotencyStore store,
    IOptions<IdempotencyMaintenanceOptions> options,
    IEnumerable<IdempotencyKeyLengthRequirement> keyLengths,
    IServiceProvider services,
    TimeProvider clock,
    ILogger<IdempotencyStoreMaintenance> logger) : BackgroundService
{
    private readonly IdempotencyStoreMaintenanceLoop _loop = new(store, logger);
    private PeriodicTimer? _timer;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var requirement in keyLengths)
        {
            if (IdempotencyStoreLimitsCheck.Refusal(store, requirement.MaxKeyLength(services), requirement.Owner) is { } refusal)
            {
                throw new InvalidOperationException(refusal);
            }
        }

        await _loop.InitializeAsync(cancellationToken).ConfigureAwait(false);

        // The timer starts with the host: ExecuteAsync runs on a pool thread that may start later, and the first purge
        // is due one interval after the start, not one interval after that thread got going.
        _timer = _loop.CreateTimer(options.Value.PurgeInterval, clock);
        await base.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        await _loop.RunAsync(_timer, settings.PurgeBatchSize, settings.AuditRetention, stoppingToken).ConfigureAwait(false);
    }

    public override void Dispose()
    {
        _timer?.Dispose();
        base.Dispose();
    }

    /// <summary>One purge of expired records now, without waiting for the timer (tests drive it).</summary>
    internal Task<int> PurgeAsync(IIdempotencyStoreSweeper sweeper, int batchSize, CancellationToken cancellationToken)
        => _loop.PurgeExpiredAsync(sweeper, batchSize, cancellationToken).AsTask();
}
