using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Oncely.AspNetCore.Tests;

/// <summary>The start-up warning when the in-memory store runs outside Development (event 1300).</summary>
public sealed class InMemoryStoreWarningTests
{
    private sealed class Host(WebApplication app, CapturingLoggerProvider logs) : IAsyncDisposable
    {
        public CapturingLoggerProvider Logs { get; } = logs;

        public ValueTask DisposeAsync() => app.DisposeAsync();
    }

    private static async Task<Host> StartAsync(string environment, Action<IServiceCollection>? services = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { EnvironmentName = environment });
        builder.WebHost.UseTestServer();
        var logs = new CapturingLoggerProvider();
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(logs);
        builder.Services.AddIdempotency();
        services?.Invoke(builder.Services);
        var app = builder.Build();
        app.UseIdempotency();
        await app.StartAsync();
        return new Host(app, logs);
    }

    private static IEnumerable<(EventId Id, LogLevel Level, string Message, IReadOnlyList<KeyValuePair<string, object?>> State)> Warnings(Host app)
        => app.Logs.Entries.Where(e => e.Id.Id == IdempotencyEventIds.InMemoryStoreOutsideDevelopment);

    [Theory]
    [InlineData("Production")]
    [InlineData("Staging")]
    public async Task InMemoryStore_OutsideDevelopment_WarnsOnceNamingTheEnvironment(string environment)
    {
        await using var app = await StartAsync(environment);

        var warning = Assert.Single(Warnings(app));
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains(environment, warning.Message, StringComparison.Ordinal);
        Assert.Contains("UsePostgreSql", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task InMemoryStore_InDevelopment_NoWarning()
    {
        await using var app = await StartAsync(Environments.Development);

        Assert.Empty(Warnings(app));
    }

    [Fact]
    public async Task AnotherStore_InProduction_NoWarning()
    {
        await using var app = await StartAsync(Environments.Production, s => s.AddIdempotency().UseStore(_ => new FaultyStore(new InMemoryIdempotencyStore())));

        Assert.Empty(Warnings(app));
    }
}
