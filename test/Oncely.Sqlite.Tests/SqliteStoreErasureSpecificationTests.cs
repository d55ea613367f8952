using Microsoft.Extensions.Time.Testing;
using Oncely.Storage.Specification;

namespace Oncely.Sqlite.Tests;

/// <summary>The erasure conformance suite on a real SQLite file per store.</summary>
public sealed class SqliteStoreErasureSpecificationTests : IdempotencyStoreErasureSpecification, IDisposable
{
    private readonly FakeTimeProvider _clock = new();
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
