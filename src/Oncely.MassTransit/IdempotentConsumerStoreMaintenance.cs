using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Oncely.MassTransit;

/// <summary>
/// For a worker without ASP.NET Core: creates the store's schema at start (stores that have one), then purges expired
/// records and old key-reuse audit entries every <see cref="IdempotentConsumerOptions.PurgeInterval"/>, in batches
/// (<see cref="IdempotencyStoreMaintenanceLoop"/>). In an application that also runs Oncely's HTTP maintenance both
/// purge; the deletes are idempotent.
/// </summary>
internal sealed class IdempotentConsumerStoreMaintenance(
    IIdempotencyStore store,
    IOptions<IdempotentConsumerOptions> options,
    TimeProvider clock,
    ILogger<IdempotentConsumerStoreMaintenance> logger) : BackgroundService
{
    private readonly IdempotencyStoreMaintenanceLoop _loop = new(store, logger);

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await _loop.InitializeAsync(cancellationToken).ConfigureAwait(false);
        await base.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        return _loop.RunAsync(settings.PurgeInterval, settings.PurgeBatchSize, settings.AuditRetention, clock, stoppingToken);
    }
}
