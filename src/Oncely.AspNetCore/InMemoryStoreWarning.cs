using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Oncely.AspNetCore;

/// <summary>
/// Warns once at start-up when the in-memory store is in use outside the Development environment: its records vanish
/// on a restart and are not shared between instances, so a retry that arrives after a restart, or reaches another
/// instance, runs the operation again.
/// </summary>
internal sealed partial class InMemoryStoreWarning(IIdempotencyStore store, IHostEnvironment environment, ILogger<InMemoryStoreWarning> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (store is InMemoryIdempotencyStore && !environment.IsDevelopment())
        {
            LogInMemoryStore(logger, environment.EnvironmentName);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
