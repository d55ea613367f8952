using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Oncely.Tests;

public class IdempotencyStoreMaintenanceLoopTests
{
    private static readonly TimeSpan Expiration = TimeSpan.FromHours(24);
    private static readonly TimeSpan Retention = TimeSpan.FromDays(30);

    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly CapturingLogger _logger = new();

    [Fact]
    public async Task PurgeExpiredAsync_MoreExpiredThanOneBatch_DeletesAllInBatchesKeepsLiveAndLogsCount()
    {
        var store = new InMemoryIdempotencyStore(_clock);
        for (var i = 0; i < 5; i++)
        {
            await ReserveAsync(store, $"old-{i}");
        }

        _clock.Advance(Expiration + TimeSpan.FromMinutes(1));
        await ReserveAsync(store, "live");

        var purged = await new IdempotencyStoreMaintenanceLoop(store, _logger).PurgeExpiredAsync(2, default);

        Assert.Equal(5, purged);
        Assert.Equal(1, store.Count);
        var entry = Assert.Single(_logger.Entries, e => e.Id.Id == IdempotencyEventIds.Purged);
        Assert.Equal(LogLevel.Debug, entry.Level);
        Assert.Equal(5, entry.State["Count"]);
    }

    [Fact]
    public async Task PurgeExpiredAsync_NothingExpired_ReturnsZeroLogsNothing()
    {
        var store = new InMemoryIdempotencyStore(_clock);
        await ReserveAsync(store, "live");

        Assert.Equal(0, await new IdempotencyStoreMaintenanceLoop(store, _logger).PurgeExpiredAsync(2, default));
        Assert.Equal(1, store.Count);
        Assert.Empty(_logger.Entries);
    }

    [Fact]
    public async Task PurgeAuditAsync_EntriesOlderThanRetention_DeletedInBatchesRecentKeptAndLogged()
    {
        var store = new InMemoryIdempotencyStore(_clock);
        for (var i = 0; i < 3; i++)
        {
            await store.AppendAsync(AuditEntry($"old-{i}"), default);
        }

        _clock.Advance(Retention + TimeSpan.FromDays(1));
        await store.AppendAsync(AuditEntry("recent"), default);

        var purged = await new IdempotencyStoreMaintenanceLoop(store, _logger).PurgeAuditAsync(Retention, 2, default);

        Assert.Equal(3, purged);
        Assert.Equal(["recent"], await AuditKeysAsync(store));
        var entry = Assert.Single(_logger.Entries, e => e.Id.Id == IdempotencyEventIds.AuditPurged);
        Assert.Equal(3, entry.State["Count"]);
        Assert.Equal(Retention, entry.State["Retention"]);
    }

    [Fact]
    public async Task PurgeExpiredAsync_StoreFails_LoggedAsMaintenanceFailedNotThrown()
    {
        var store = new FailingStore();

        Assert.Equal(0, await new IdempotencyStoreMaintenanceLoop(store, _logger).PurgeExpiredAsync(2, default));
        Assert.Equal(0, await new IdempotencyStoreMaintenanceLoop(store, _logger).PurgeAuditAsync(Retention, 2, default));

        Assert.Equal(
            ["purge of expired records", "purge of old key-reuse audit entries"],
            _logger.Entries.Where(e => e.Id.Id == IdempotencyEventIds.MaintenanceFailed).Select(e => (string)e.State["Task"]!));
        Assert.All(_logger.Entries, e => Assert.Equal(LogLevel.Warning, e.Level));
        Assert.All(_logger.Entries, e => Assert.IsType<IdempotencyStoreUnavailableException>(e.Exception));
    }

    [Fact]
    public async Task InitializeAsync_SchemaCreationFails_LoggedAsMaintenanceFailedNotThrown()
    {
        var store = new FailingStore();

        await new IdempotencyStoreMaintenanceLoop(store, _logger).InitializeAsync(default);

        Assert.Equal(1, store.InitializeCalls);
        var entry = Assert.Single(_logger.Entries);
        Assert.Equal(IdempotencyEventIds.MaintenanceFailed, entry.Id.Id);
        Assert.Equal("schema creation", entry.State["Task"]);
    }

    [Fact]
    public async Task InitializeAsync_Cancelled_Throws()
    {
        var store = new FailingStore();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
            await new IdempotencyStoreMaintenanceLoop(store, _logger).InitializeAsync(new CancellationToken(canceled: true)));
        Assert.Empty(_logger.Entries);
    }

    [Fact]
    public async Task PurgeAsync_StoreWithoutTheCapabilities_ReturnsZeroWithoutCallingIt()
    {
        var loop = new IdempotencyStoreMaintenanceLoop(new BareStore(), _logger);

        await loop.InitializeAsync(default);
        Assert.Equal(0, await loop.PurgeExpiredAsync(2, default));
        Assert.Equal(0, await loop.PurgeAuditAsync(Retention, 2, default));
        await loop.RunAsync(TimeSpan.FromMinutes(1), 2, Retention, _clock, default); // returns at once: nothing to purge
        Assert.Empty(_logger.Entries);
    }

    [Fact]
    public async Task RunAsync_TimerTicks_PurgesExpiredRecordsAndOldAuditEntriesThenStopsQuietlyOnCancel()
    {
        var store = new InMemoryIdempotencyStore(_clock);
        await ReserveAsync(store, "old");
        await store.AppendAsync(AuditEntry("old"), default);
        using var stopping = new CancellationTokenSource();
        var running = new IdempotencyStoreMaintenanceLoop(store, _logger).RunAsync(TimeSpan.FromMinutes(5), 2, Retention, _clock, stopping.Token);

        _clock.Advance(Retention + TimeSpan.FromDays(1));
        await WaitUntilAsync(async () => store.Count == 0 && (await AuditKeysAsync(store)).Count == 0);

        await stopping.CancelAsync();
        await running;
        Assert.DoesNotContain(_logger.Entries, e => e.Id.Id == IdempotencyEventIds.MaintenanceFailed);
    }

    [Fact]
    public async Task PurgeExpiredAsync_BatchSizeNotPositive_Throws()
    {
        var loop = new IdempotencyStoreMaintenanceLoop(new InMemoryIdempotencyStore(_clock), _logger);

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await loop.PurgeExpiredAsync(0, default));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await loop.PurgeAuditAsync(TimeSpan.Zero, 2, default));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => loop.RunAsync(TimeSpan.Zero, 2, Retention, _clock, default));
    }

    private static async Task ReserveAsync(InMemoryIdempotencyStore store, string key)
    {
        var reservation = await store.TryReserveAsync(new("tenant", "POST /payments", key), "fp", TimeSpan.FromSeconds(30), Expiration, default);
        Assert.Equal(ReservationOutcome.Acquired, reservation.Outcome);
    }

    private KeyReuseAuditEntry AuditEntry(string key)
        => new(new IdempotencyRecordId("tenant", "POST /payments", key), new string('a', 64), new string('b', 64), "{}", _clock.GetUtcNow());

    private static async Task<List<string>> AuditKeysAsync(InMemoryIdempotencyStore store)
    {
        var page = await store.ListAuditAsync(new KeyReuseAuditQuery(), default);
        return [.. page.Entries.Select(e => e.Id.Key)];
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!await condition())
        {
            await Task.Delay(TimeSpan.FromMilliseconds(10), timeout.Token);
        }
    }

    /// <summary>A store whose schema creation and purges fail as an unreachable database's do.</summary>
    private sealed class FailingStore : BareStore, IIdempotencyStoreInitializer, IIdempotencyStoreSweeper, IIdempotencyAuditStore
    {
        public int InitializeCalls { get; private set; }

        public ValueTask InitializeAsync(CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            InitializeCalls++;
            throw Unreachable();
        }

        public ValueTask<int> PurgeExpiredAsync(int batchSize, CancellationToken cancellationToken) => throw Unreachable();

        public ValueTask AppendAsync(KeyReuseAuditEntry entry, CancellationToken cancellationToken) => throw Unreachable();

        public ValueTask<int> PurgeAuditAsync(TimeSpan retention, int batchSize, CancellationToken cancellationToken) => throw Unreachable();

        private static IdempotencyStoreUnavailableException Unreachable() => new("connection refused (test)");
    }

    /// <summary>
    /// A store with none of the optional capabilities (native expiry, no audit, no schema). Maintenance never runs a
    /// record transition, so each one throws.
    /// </summary>
    private class BareStore : IIdempotencyStore
    {
        public ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<bool> TryReleaseAsync(IdempotencyRecordId id, long fencingToken, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<bool> TrySetRecoveryPointAsync(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<bool> TryRenewLeaseAsync(IdempotencyRecordId id, long fencingToken, TimeSpan lease, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken) => throw new NotSupportedException();
    }

    private sealed class CapturingLogger : ILogger
    {
        public ConcurrentQueue<(EventId Id, LogLevel Level, Exception? Exception, Dictionary<string, object?> State)> Entries { get; } = new();

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => Entries.Enqueue((eventId, logLevel, exception, (state as IEnumerable<KeyValuePair<string, object?>> ?? []).ToDictionary(p => p.Key, p => p.Value)));
    }
}
