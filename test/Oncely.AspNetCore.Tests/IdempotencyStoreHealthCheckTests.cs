using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Oncely.AspNetCore.Tests;

/// <summary>The registration of the store's health check; the checks against real SQLite and PostgreSQL stores live with those stores' tests.</summary>
public sealed class IdempotencyStoreHealthCheckTests
{
    [Fact]
    public async Task AddIdempotencyStore_Defaults_RegisteredAsOncelyStoreAndHealthyOnTheInMemoryStore()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddIdempotency();
        services.AddHealthChecks().AddIdempotencyStore();
        await using var provider = services.BuildServiceProvider();

        var report = await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync();

        var (name, entry) = Assert.Single(report.Entries);
        Assert.Equal("oncely-store", name);
        Assert.Equal(HealthStatus.Healthy, entry.Status);
        Assert.Equal("InMemoryIdempotencyStore", entry.Data["store"]);
    }

    [Fact]
    public void AddIdempotencyStore_TimeoutNotPositive_Refused()
    {
        var checks = new ServiceCollection().AddHealthChecks();

        Assert.Throws<ArgumentOutOfRangeException>(() => checks.AddIdempotencyStore(timeout: TimeSpan.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => checks.AddIdempotencyStore(degradedThreshold: TimeSpan.FromSeconds(-1)));
    }

    [Fact]
    public async Task AddIdempotencyStore_WithoutAddIdempotency_ThrowsSayingWhatToCall()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddHealthChecks().AddIdempotencyStore();
        await using var provider = services.BuildServiceProvider();

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => provider.GetRequiredService<HealthCheckService>().CheckHealthAsync());

        Assert.Contains("call services.AddIdempotency()", error.Message, StringComparison.Ordinal);
    }
}
