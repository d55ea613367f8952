using Oncely.StackExchangeRedis.Tests.Infrastructure;
using StackExchange.Redis;
using static Oncely.StackExchangeRedis.Tests.Infrastructure.StoreFactory;

namespace Oncely.StackExchangeRedis.Tests;

/// <summary>The operator API (<see cref="IIdempotencyStoreAdministration"/>) on a standalone server.</summary>
[Collection(StandaloneCollection.Name)]
public sealed class RedisAdministrationTests(StandaloneRedisFixture fixture)
{
    [Fact]
    public Task ListRecords_FiltersAndPages_NewestFirstWithoutGapsOrRepeats() => AdministrationScenarios.ListRecordsAsync(fixture.Connection);

    [Fact]
    public Task FindByKey_SameKeyUnderSeveralOperations_FindsEachLiveOneNewestFirst() => AdministrationScenarios.FindByKeyAsync(fixture.Connection);

    [Fact]
    public Task ListAudit_FiltersAndPages_NewestFirst() => AdministrationScenarios.ListAuditAsync(fixture.Connection);

    [Fact]
    public async Task List_BadLimitOrForeignContinuation_Refused()
    {
        await using var store = Create(fixture.Connection, NewPrefix("admin-bad"));

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await store.ListRecordsAsync(new IdempotencyRecordQuery { Limit = 0 }, default));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await store.ListRecordsAsync(new IdempotencyRecordQuery { Limit = 501 }, default));
        await Assert.ThrowsAsync<ArgumentException>(async () => await store.ListRecordsAsync(new IdempotencyRecordQuery { Continuation = "not-ours" }, default));
        await Assert.ThrowsAsync<ArgumentException>(async () => await store.ListAuditAsync(new KeyReuseAuditQuery { Continuation = "not-a-stream-id" }, default));
    }
}

/// <summary>
/// The operator API on a three-primary cluster: listing covers every primary (each one is scanned), and a look-up by
/// tenant and key asks the one primary that holds that key's slot.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class RedisClusterAdministrationTests(ClusterRedisFixture fixture)
{
    [Fact]
    public Task ListRecords_FiltersAndPages_NewestFirstWithoutGapsOrRepeats() => AdministrationScenarios.ListRecordsAsync(fixture.Connection);

    [Fact]
    public Task FindByKey_SameKeyUnderSeveralOperations_FindsEachLiveOneNewestFirst() => AdministrationScenarios.FindByKeyAsync(fixture.Connection);

    [Fact]
    public Task ListAudit_FiltersAndPages_NewestFirst() => AdministrationScenarios.ListAuditAsync(fixture.Connection);

    [Fact]
    public async Task ListRecords_RecordsOnEveryPrimary_AllListed()
    {
        await using var store = Create(fixture.Connection, NewPrefix("admin-spread"));
        var ids = Enumerable.Range(0, 60).Select(i => NewId(tenant: "spread")).ToList();
        foreach (var id in ids)
        {
            await store.TryReserveAsync(id, Fingerprint('a'), TimeSpan.FromMinutes(1), TimeSpan.FromHours(1), default);
        }

        var holders = ids.Select(id => fixture.Connection.GetServer(store.Keys.Record(id)).EndPoint!.ToString()).Distinct().Count();
        Assert.Equal(3, holders);

        var listed = new List<IdempotencyRecordSummary>();
        string? continuation = null;
        do
        {
            var page = await store.ListRecordsAsync(new IdempotencyRecordQuery { Limit = 25, Continuation = continuation }, default);
            listed.AddRange(page.Records);
            continuation = page.Continuation;
        }
        while (continuation is not null);

        Assert.Equal(ids.Select(i => i.Key).Order(StringComparer.Ordinal), listed.Select(r => r.Id.Key).Order(StringComparer.Ordinal));
    }
}

/// <summary>Scenarios run on both topologies.</summary>
internal static class AdministrationScenarios
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    public static async Task ListRecordsAsync(IConnectionMultiplexer connection)
    {
        await using var store = Create(connection, NewPrefix("admin-list"));
        var created = new List<IdempotencyRecordId>();
        for (var i = 0; i < 12; i++)
        {
            var id = NewId(tenant: i % 3 == 0 ? "tenant-b" : "tenant-a", operation: i % 2 == 0 ? "POST /payments" : "POST /refunds");
            var reserved = await store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
            if (i % 4 == 0)
            {
                Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, new IdempotentResponse(201, [], "{}"u8.ToArray()), Hour, default));
            }

            created.Add(id);
            await Task.Delay(2); // distinct creation times, so "newest first" has one right answer
        }

        var released = NewId(tenant: "tenant-a");
        var gone = await store.TryReserveAsync(released, Fingerprint('a'), Minute, Hour, default);
        Assert.True(await store.TryReleaseAsync(released, gone.Record.FencingToken, default));

        // Every live record, newest first, across pages of 5.
        var all = await ReadAllAsync(store, new IdempotencyRecordQuery { Limit = 5 });
        Assert.Equal(Enumerable.Reverse(created).ToList(), all.Select(r => r.Id).ToList());
        Assert.DoesNotContain(all, r => r.Id == released);
        var completed = all.Where(r => r.State == IdempotencyRecordState.Completed).ToList();
        Assert.Equal(3, completed.Count);
        Assert.All(completed, r => Assert.Equal(201, r.StatusCode));
        Assert.All(all.Where(r => r.State == IdempotencyRecordState.InProgress), r => Assert.Null(r.StatusCode));
        Assert.All(all, r => Assert.True(r.ExpiresAt > r.CreatedAt && r.FencingToken > 0 && r.Fingerprint == Fingerprint('a')));

        var tenantB = await ReadAllAsync(store, new IdempotencyRecordQuery { Tenant = "tenant-b", Limit = 2 });
        Assert.Equal(created.Where(id => id.Tenant == "tenant-b").Reverse().ToList(), tenantB.Select(r => r.Id).ToList());

        var refundsInProgress = await ReadAllAsync(store, new IdempotencyRecordQuery { Operation = "POST /refunds", State = IdempotencyRecordState.InProgress });
        Assert.Equal(created.Where(id => id.Operation == "POST /refunds").Reverse().ToList(), refundsInProgress.Select(r => r.Id).ToList());

        var cutoff = all[6].CreatedAt;
        var older = await ReadAllAsync(store, new IdempotencyRecordQuery { CreatedBefore = cutoff, Limit = 4 });
        Assert.Equal(all.Skip(6).Select(r => r.Id).ToList(), older.Select(r => r.Id).ToList());

        var last = await store.ListRecordsAsync(new IdempotencyRecordQuery { Limit = 12 }, default);
        Assert.Equal(12, last.Records.Count);
        Assert.Null(last.Continuation);
    }

    public static async Task FindByKeyAsync(IConnectionMultiplexer connection)
    {
        await using var store = Create(connection, NewPrefix("admin-find"));
        var key = "order-" + Guid.NewGuid().ToString("N");
        var payment = new IdempotencyRecordId("tenant-*", "POST /payments", key);
        var refund = payment with { Operation = "POST /refunds" };
        var otherTenant = payment with { Tenant = "tenant-x" };
        var otherKey = payment with { Key = key + "-2" };
        var first = await store.TryReserveAsync(payment, Fingerprint('a'), Minute, Hour, default);
        Assert.True(await store.TryCompleteAsync(payment, first.Record.FencingToken, new IdempotentResponse(200, [], ReadOnlyMemory<byte>.Empty), Hour, default));
        await Task.Delay(2);
        await store.TryReserveAsync(refund, Fingerprint('b'), Minute, Hour, default);
        await store.TryReserveAsync(otherTenant, Fingerprint('a'), Minute, Hour, default);
        await store.TryReserveAsync(otherKey, Fingerprint('a'), Minute, Hour, default);

        var found = await store.FindByKeyAsync("tenant-*", key, default);

        Assert.Equal([refund, payment], found.Select(r => r.Id).ToList());
        Assert.Equal(IdempotencyRecordState.InProgress, found[0].State);
        Assert.Equal(IdempotencyRecordState.Completed, found[1].State);
        Assert.Equal(200, found[1].StatusCode);
        Assert.Equal(first.Record.FencingToken, found[1].FencingToken);
        Assert.Empty(await store.FindByKeyAsync("tenant-*", "missing", default));
    }

    public static async Task ListAuditAsync(IConnectionMultiplexer connection)
    {
        await using var store = Create(connection, NewPrefix("admin-audit"));
        var entries = new List<KeyReuseAuditEntry>();
        for (var i = 0; i < 9; i++)
        {
            var id = new IdempotencyRecordId(i % 3 == 0 ? "tenant-b" : "tenant-a", i % 2 == 0 ? "POST /payments" : "POST /refunds", "k-" + (i % 4).ToString(System.Globalization.CultureInfo.InvariantCulture));
            var entry = new KeyReuseAuditEntry(id, Fingerprint('a'), Fingerprint('b'), "{\"n\":" + i + "}", new DateTimeOffset(2026, 1, 1, 0, 0, i, TimeSpan.Zero).AddTicks(i));
            await store.AppendAsync(entry, default);
            entries.Add(entry);
        }

        var all = await ReadAuditAsync(store, new KeyReuseAuditQuery { Limit = 4 });
        Assert.Equal(Enumerable.Reverse(entries).ToList(), all);

        var tenantA = await ReadAuditAsync(store, new KeyReuseAuditQuery { Tenant = "tenant-a", Limit = 2 });
        Assert.Equal(entries.Where(e => e.Id.Tenant == "tenant-a").Reverse().ToList(), tenantA);

        var byKey = await ReadAuditAsync(store, new KeyReuseAuditQuery { Operation = "POST /payments", Key = "k-0", Limit = 1 });
        Assert.Equal(entries.Where(e => e.Id.Operation == "POST /payments" && e.Id.Key == "k-0").Reverse().ToList(), byKey);

        var exact = await store.ListAuditAsync(new KeyReuseAuditQuery { Limit = 9 }, default);
        Assert.Equal(9, exact.Entries.Count);
        Assert.Null(exact.Continuation);
    }

    private static async Task<List<IdempotencyRecordSummary>> ReadAllAsync(IIdempotencyStoreAdministration store, IdempotencyRecordQuery query)
    {
        var records = new List<IdempotencyRecordSummary>();
        string? continuation = null;
        do
        {
            var page = await store.ListRecordsAsync(query with { Continuation = continuation }, default);
            Assert.InRange(page.Records.Count, 0, query.Limit);
            records.AddRange(page.Records);
            continuation = page.Continuation;
        }
        while (continuation is not null);

        return records;
    }

    private static async Task<List<KeyReuseAuditEntry>> ReadAuditAsync(IIdempotencyStoreAdministration store, KeyReuseAuditQuery query)
    {
        var entries = new List<KeyReuseAuditEntry>();
        string? continuation = null;
        do
        {
            var page = await store.ListAuditAsync(query with { Continuation = continuation }, default);
            Assert.InRange(page.Entries.Count, 0, query.Limit);
            entries.AddRange(page.Entries);
            continuation = page.Continuation;
        }
        while (continuation is not null);

        return entries;
    }
}
