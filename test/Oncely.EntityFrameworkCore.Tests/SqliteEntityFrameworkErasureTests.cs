using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Oncely.Sqlite;
using Oncely.Storage.Specification;

namespace Oncely.EntityFrameworkCore.Tests;

/// <summary>
/// The erasure conformance suite on the store an EF Core application registers (<c>UseSqlite</c> on the database its
/// <c>DbContext</c> uses): EF Core completes that store's own rows, so erasing them is that store's erasure.
/// </summary>
public sealed class SqliteEntityFrameworkErasureTests : IdempotencyStoreErasureSpecification, IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "oncely-ef-erasure", Guid.NewGuid().ToString("N"));
    private readonly List<ServiceProvider> _providers = [];

    public SqliteEntityFrameworkErasureTests() => Directory.CreateDirectory(_directory);

    protected override async ValueTask<IIdempotencyStore> CreateStoreAsync()
    {
        var connectionString = new SqliteConnectionStringBuilder { DataSource = Path.Combine(_directory, $"{Guid.NewGuid():N}.db"), DefaultTimeout = 5 }.ToString();
        var services = new ServiceCollection();
        services.AddSingleton(TimeProvider.System);
        new Builder(services).UseSqlite(connectionString);
        var provider = services.BuildServiceProvider();
        _providers.Add(provider);
        var store = provider.GetRequiredService<IIdempotencyStore>();
        await ((IIdempotencyStoreInitializer)store).InitializeAsync(CancellationToken.None);
        return store;
    }

    protected override Task AdvanceClockAsync(TimeSpan by) => Task.Delay(by);

    public void Dispose()
    {
        foreach (var provider in _providers)
        {
            provider.Dispose();
        }

        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private sealed class Builder(IServiceCollection services) : IIdempotencyBuilder
    {
        public IServiceCollection Services { get; } = services;
    }
}
