using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Oncely.Testing;

namespace Oncely.Tests;

/// <summary>The eraser's own behaviour around the store: a store without the capability, an audit that cannot be written.</summary>
public sealed class IdempotencyEraserTests
{
    private static readonly IdempotentResponse Created = new(201, [], "{}"u8.ToArray());

    [Fact]
    public async Task Erase_StoreWithoutTheCapability_ThrowsNotSupportedNamingTheStore_NothingErased()
    {
        var inner = new InMemoryIdempotencyStore();
        var id = new IdempotencyRecordId("tenant-1", "POST /payments", "k");
        var reserved = await inner.TryReserveAsync(id, new string('a', 64), TimeSpan.FromMinutes(1), TimeSpan.FromHours(1), default);
        Assert.True(await inner.TryCompleteAsync(id, reserved.Record.FencingToken, Created, TimeSpan.FromHours(1), default));
        var eraser = new IdempotencyEraser(new PlainStore(inner));

        Assert.False(eraser.IsSupported);
        var error = await Assert.ThrowsAsync<NotSupportedException>(() => eraser.EraseTenantAsync("tenant-1", "alice", default).AsTask());

        Assert.Contains(nameof(PlainStore), error.Message, StringComparison.Ordinal);
        Assert.Contains("IIdempotencyStoreErasure", error.Message, StringComparison.Ordinal);
        Assert.NotNull(await inner.GetAsync(id, default));
    }

    [Fact]
    public async Task Erase_AuditWriteFails_ErasureStandsAndIsLogged1070And1071()
    {
        var inner = new InMemoryIdempotencyStore();
        var id = new IdempotencyRecordId("tenant-1", "POST /payments", "k");
        var reserved = await inner.TryReserveAsync(id, new string('a', 64), TimeSpan.FromMinutes(1), TimeSpan.FromHours(1), default);
        Assert.True(await inner.TryCompleteAsync(id, reserved.Record.FencingToken, Created, TimeSpan.FromHours(1), default));
        var log = new ListLogger();
        var eraser = new IdempotencyEraser(new AuditFailingStore(inner), TimeProvider.System, log);

        var result = await eraser.EraseKeyAsync("tenant-1", "k", "alice", default);

        Assert.Equal(1, result.RecordsErased);
        Assert.Null(await inner.GetAsync(id, default));
        Assert.Equal([IdempotencyEventIds.RecordsErased, IdempotencyEventIds.ErasureAuditFailed], log.Entries.Select(e => e.EventId));
        Assert.All(log.Entries, e => Assert.Equal(LogLevel.Warning, e.Level));
    }

    private sealed class PlainStore(IIdempotencyStore inner) : DelegatingIdempotencyStore(inner);

    private sealed class AuditFailingStore(InMemoryIdempotencyStore inner) : DelegatingIdempotencyStore(inner), IIdempotencyStoreErasure, IIdempotencyAuditStore
    {
        public ValueTask<IdempotencyErasureResult> EraseTenantAsync(string tenant, CancellationToken cancellationToken) => inner.EraseTenantAsync(tenant, cancellationToken);

        public ValueTask<IdempotencyErasureResult> EraseKeyAsync(string tenant, string key, CancellationToken cancellationToken) => inner.EraseKeyAsync(tenant, key, cancellationToken);

        public ValueTask AppendAsync(KeyReuseAuditEntry entry, CancellationToken cancellationToken) => throw new IdempotencyStoreUnavailableException("audit down");

        public ValueTask<int> PurgeAuditAsync(TimeSpan retention, int batchSize, CancellationToken cancellationToken) => inner.PurgeAuditAsync(retention, batchSize, cancellationToken);
    }

    private sealed class ListLogger : ILogger<IdempotencyEraser>
    {
        public ConcurrentQueue<(int EventId, LogLevel Level)> Entries { get; } = new();

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => Entries.Enqueue((eventId.Id, logLevel));
    }
}
