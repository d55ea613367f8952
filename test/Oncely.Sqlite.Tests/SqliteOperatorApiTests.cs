using Microsoft.Extensions.Time.Testing;
using Oncely.Storage.Specification;

namespace Oncely.Sqlite.Tests;

/// <summary>The operator API over HTTP on the SQLite store (a fresh database file per test).</summary>
public sealed class SqliteOperatorApiTests : OperatorApiSpecification, IDisposable
{
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero));
    private readonly TemporaryDirectory _directory = new();

    protected override TimeProvider Clock => _clock;

    protected override async ValueTask<IIdempotencyStore> CreateStoreAsync()
    {
        var options = new SqliteIdempotencyStoreOptions { ConnectionString = TemporaryDirectory.ConnectionStringFor(_directory.NewDatabasePath()) };
        var store = new SqliteIdempotencyStore(options, _clock);
        await store.InitializeAsync(CancellationToken.None);
        return store;
    }

    protected override Task AdvanceClockAsync(TimeSpan by)
    {
        _clock.Advance(by);
        return Task.CompletedTask;
    }

    public void Dispose() => _directory.Dispose();
}
