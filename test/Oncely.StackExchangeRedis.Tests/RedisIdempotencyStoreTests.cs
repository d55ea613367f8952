using System.Globalization;
using Oncely.StackExchangeRedis.Tests.Infrastructure;
using StackExchange.Redis;
using static Oncely.StackExchangeRedis.Tests.Infrastructure.StoreFactory;

namespace Oncely.StackExchangeRedis.Tests;

/// <summary>What the Redis store guarantees beyond the shared conformance suite, on a real standalone server.</summary>
[Collection(StandaloneCollection.Name)]
public sealed class RedisIdempotencyStoreTests(StandaloneRedisFixture fixture) : IAsyncLifetime
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    // The key's expiry is the record's, rounded up to the next millisecond: never earlier, at most a few ms later.
    private static readonly TimeSpan Rounding = TimeSpan.FromMilliseconds(10);

    private readonly IConnectionMultiplexer _connection = fixture.Connection;
    private RedisIdempotencyStore _store = null!;

    private IDatabase Db => _connection.GetDatabase();

    private IServer Server => _connection.GetServers().Single();

    public async Task InitializeAsync()
    {
        _store = Create(_connection, NewPrefix("store"));
        await _store.InitializeAsync(default);
    }

    public async Task DisposeAsync() => await _store.DisposeAsync();

    [Theory]
    [InlineData("tenant-a", "POST /payments", "key-1")]
    [InlineData("", "POST /payments/{id}", "{x}")]
    [InlineData("t:{1}:r:3:", "POST /a:b/{c}", "k:{2}")]
    [InlineData("日本", "POST /注文/🎉", "*?[]\\")]
    public void KeyLayout_AnyId_RecordAndFenceShareOneHashSlotAndTheIdParsesBack(string tenant, string operation, string key)
    {
        var id = new IdempotencyRecordId(tenant, operation, key);

        var record = _store.Keys.Record(id);
        var fence = _store.Keys.Fence(id);

        Assert.Equal(_connection.HashSlot(fence), _connection.HashSlot(record));
        Assert.True(_store.Keys.TryParseRecord(record.ToString(), out var parsed));
        Assert.Equal(id, parsed);
        Assert.False(_store.Keys.TryParseRecord(fence.ToString(), out _));
    }

    [Fact]
    public void KeyLayout_SameTenantAndKeyUnderEveryOperation_ShareOneHashSlot()
    {
        var slots = new[] { "POST /payments", "POST /refunds", "PATCH /orders/{id}" }
            .Select(operation => _connection.HashSlot(_store.Keys.Record(new IdempotencyRecordId("tenant-a", operation, "k-1"))))
            .Distinct();

        Assert.Single(slots);
    }

    [Fact]
    public async Task Reserve_ReplayInProgressDuplicateAndReusedKey_WriteNothingOnTheServer()
    {
        // A server of its own: its change counter counts every client's writes, and the shared server also serves the
        // specification collections, which run in parallel with this one.
        await using var server = await RedisServer.StartNewAsync();
        await using var connection = await SharedRedis.ConnectAsync(server.EndPoint);
        await using var store = Create(connection, NewPrefix("quiet"));
        var completed = NewId();
        var held = NewId();
        var reserved = await store.TryReserveAsync(completed, Fingerprint('a'), Minute, Hour, default);
        Assert.True(await store.TryCompleteAsync(completed, reserved.Record.FencingToken, new IdempotentResponse(201, [new("Location", "/p/1")], "{}"u8.ToArray()), Hour, default));
        await store.TryReserveAsync(held, Fingerprint('a'), Minute, Hour, default);
        var before = await ChangesSinceSaveAsync(connection);

        for (var i = 0; i < 100; i++)
        {
            Assert.Equal(ReservationOutcome.Completed, (await store.TryReserveAsync(completed, Fingerprint('a'), Minute, Hour, default)).Outcome);
            Assert.Equal(ReservationOutcome.InProgress, (await store.TryReserveAsync(held, Fingerprint('a'), Minute, Hour, default)).Outcome);
            Assert.Equal(ReservationOutcome.FingerprintMismatch, (await store.TryReserveAsync(completed, Fingerprint('b'), Minute, Hour, default)).Outcome);
            Assert.NotNull(await store.GetAsync(completed, default));
        }

        // The server's own count of writes (every write command that changed the data set) did not move.
        Assert.Equal(before, await ChangesSinceSaveAsync(connection));
        await store.TryReserveAsync(NewId(), Fingerprint('a'), Minute, Hour, default);
        Assert.True(await ChangesSinceSaveAsync(connection) > before, "a new reservation is counted, so the counter does count this store's writes");
    }

    [Fact]
    public async Task Records_NativeTtl_CoversLeaseAndExpirationAndKeysVanishWithoutASweeper()
    {
        Assert.IsNotAssignableFrom<IIdempotencyStoreSweeper>(_store);
        var longLease = NewId();
        var reserved = await _store.TryReserveAsync(longLease, Fingerprint('a'), TimeSpan.FromMinutes(10), Minute, default);
        var leaseTtl = await Db.KeyTimeToLiveAsync(_store.Keys.Record(longLease));
        Assert.True(leaseTtl > TimeSpan.FromMinutes(9) && leaseTtl <= TimeSpan.FromMinutes(10) + Rounding, $"TTL {leaseTtl}");

        var longExpiration = NewId();
        await _store.TryReserveAsync(longExpiration, Fingerprint('a'), Minute, Hour, default);
        var expirationTtl = await Db.KeyTimeToLiveAsync(_store.Keys.Record(longExpiration));
        Assert.True(expirationTtl > TimeSpan.FromMinutes(59) && expirationTtl <= Hour + Rounding, $"TTL {expirationTtl}");

        Assert.True(await _store.TryCompleteAsync(longLease, reserved.Record.FencingToken, new IdempotentResponse(200, [], "ok"u8.ToArray()), TimeSpan.FromSeconds(1), default));
        var completedTtl = await Db.KeyTimeToLiveAsync(_store.Keys.Record(longLease));
        Assert.True(completedTtl > TimeSpan.Zero && completedTtl <= TimeSpan.FromSeconds(1) + Rounding, $"TTL {completedTtl}");

        await Task.Delay(TimeSpan.FromMilliseconds(1500));
        Assert.False(await Db.KeyExistsAsync(_store.Keys.Record(longLease)));
        Assert.Null(await _store.GetAsync(longLease, default));
    }

    [Fact]
    public async Task FencingToken_CounterLostAsInAFailover_NextTokenOfTheRecordIsStillLarger()
    {
        var id = NewId();
        var tokens = new List<long>();
        for (var i = 0; i < 5; i++)
        {
            var reserved = await _store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
            Assert.Equal(ReservationOutcome.Acquired, reserved.Outcome);
            tokens.Add(reserved.Record.FencingToken);
            Assert.True(await _store.TryReleaseAsync(id, reserved.Record.FencingToken, default));
        }

        // Asynchronous replication can lose the counter's last increments in a failover; simulate the worst: it is gone.
        Assert.True(await Db.KeyDeleteAsync(_store.Keys.Fence(id)));
        var after = await _store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        Assert.Equal(tokens.Order(), tokens);
        Assert.Equal(tokens.Count, tokens.Distinct().Count());
        Assert.True(after.Record.FencingToken > tokens.Max(), $"{after.Record.FencingToken} after {string.Join(", ", tokens)}");
        Assert.False(await _store.TryCompleteAsync(id, tokens[^1], new IdempotentResponse(200, [], "stale"u8.ToArray()), Hour, default));
    }

    [Fact]
    public async Task Complete_RepeatedWithTheSameAnswer_ReportsSuccessAndAnotherAnswerIsRefused()
    {
        var id = NewId();
        var reserved = await _store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
        var answer = new IdempotentResponse(201, [new("Location", "/p/1")], "{\"id\":1}"u8.ToArray());

        Assert.True(await _store.TryCompleteAsync(id, reserved.Record.FencingToken, answer, Hour, default));
        Assert.True(await _store.TryCompleteAsync(id, reserved.Record.FencingToken, new IdempotentResponse(201, [new("Location", "/p/1")], "{\"id\":1}"u8.ToArray()), Hour, default));
        Assert.False(await _store.TryCompleteAsync(id, reserved.Record.FencingToken, new IdempotentResponse(201, [new("Location", "/p/1")], "{\"id\":2}"u8.ToArray()), Hour, default));
        Assert.False(await _store.TryCompleteAsync(id, reserved.Record.FencingToken + 1, answer, Hour, default));

        Assert.Equal("{\"id\":1}"u8.ToArray(), (await _store.GetAsync(id, default))!.Response!.Body.ToArray());
    }

    [Fact]
    public async Task AppendAsync_ThousandEntries_StreamStaysNearItsCap()
    {
        await using var store = Create(_connection, NewPrefix("cap"), o => o.AuditMaxEntries = 100);
        for (var i = 0; i < 1000; i++)
        {
            await store.AppendAsync(new KeyReuseAuditEntry(NewId(), Fingerprint('a'), Fingerprint('b'), "{\"n\":" + i + "}", DateTimeOffset.UtcNow), default);
        }

        var length = await Db.StreamLengthAsync(store.Keys.Audit);
        Assert.InRange(length, 100, 300);
        var newest = await store.ListAuditAsync(new KeyReuseAuditQuery { Limit = 1 }, default);
        Assert.Equal("{\"n\":999}", Assert.Single(newest.Entries).Payload);
    }

    [Fact]
    public async Task PurgeAuditAsync_EntriesOlderThanRetention_DeletedInBoundedBatchesNewerKept()
    {
        await using var store = Create(_connection, NewPrefix("purge"));
        for (var i = 0; i < 5; i++)
        {
            await store.AppendAsync(new KeyReuseAuditEntry(NewId(), Fingerprint('a'), Fingerprint('b'), "old", DateTimeOffset.UtcNow), default);
        }

        Assert.Equal(0, await store.PurgeAuditAsync(TimeSpan.FromSeconds(1), 2, default));
        await Task.Delay(TimeSpan.FromMilliseconds(1300));
        await store.AppendAsync(new KeyReuseAuditEntry(NewId(), Fingerprint('a'), Fingerprint('b'), "new", DateTimeOffset.UtcNow), default);

        Assert.Equal(2, await store.PurgeAuditAsync(TimeSpan.FromSeconds(1), 2, default));
        Assert.Equal(2, await store.PurgeAuditAsync(TimeSpan.FromSeconds(1), 2, default));
        Assert.Equal(1, await store.PurgeAuditAsync(TimeSpan.FromSeconds(1), 2, default));
        Assert.Equal(0, await store.PurgeAuditAsync(TimeSpan.FromSeconds(1), 2, default));
        var left = await store.ListAuditAsync(new KeyReuseAuditQuery(), default);
        Assert.Equal("new", Assert.Single(left.Entries).Payload);
    }

    [Fact]
    public async Task Attempts_RecordWrittenBeforeTheField_ReadsAsOneEverywhere_FirstTakeOverWritesTwo()
    {
        // A record exactly as the previous version wrote it: every field but "a".
        var id = NewId();
        var key = _store.Keys.Record(id);
        var now = new DateTimeOffset(DateTime.SpecifyKind(await Server.TimeAsync(), DateTimeKind.Utc));
        static string Micro(DateTimeOffset at) => ((at - DateTimeOffset.UnixEpoch).Ticks / 10).ToString(CultureInfo.InvariantCulture);
        var fingerprint = Fingerprint('a');
        await Db.HashSetAsync(key, [new("f", fingerprint), new("s", "0"), new("t", "41"), new("l", Micro(now + Hour)), new("e", Micro(now + Hour)), new("c", Micro(now)), new("p", "charged")]);
        await Db.KeyExpireAsync(key, now.UtcDateTime + Hour);
        Assert.False(await Db.HashExistsAsync(key, "a"));

        Assert.Equal(1, (await _store.GetAsync(id, default))?.Attempts);
        Assert.Equal(1, (await _store.TryReserveAsync(id, fingerprint, Minute, Hour, default)).Record.Attempts); // InProgress
        Assert.Equal(1, Assert.Single((await _store.ListRecordsAsync(new IdempotencyRecordQuery { Tenant = id.Tenant }, default)).Records).Attempts);
        Assert.Equal(1, Assert.Single(await _store.FindByKeyAsync(id.Tenant, id.Key, default)).Attempts);
        var erasure = await _store.EraseKeyAsync(id.Tenant, id.Key, default);
        Assert.Equal(1, Assert.Single(erasure.InProgress).Attempts); // kept: its operation may still run

        await Db.HashSetAsync(key, "l", Micro(now)); // the old holder's lease has run out
        var takeOver = await _store.TryReserveAsync(id, fingerprint, Minute, Hour, default);

        Assert.Equal(ReservationOutcome.TakenOver, takeOver.Outcome);
        Assert.Equal(2, takeOver.Record.Attempts);
        Assert.Equal("charged", takeOver.Record.RecoveryPoint);
        Assert.Equal("2", (string?)await Db.HashGetAsync(key, "a"));
        Assert.Equal(2, Assert.Single(await _store.FindByKeyAsync(id.Tenant, id.Key, default)).Attempts);
    }

    [Fact]
    public async Task Attempts_StoredInTheRecordHash_KeptByCompletion()
    {
        var id = NewId();
        var key = _store.Keys.Record(id);
        var reserved = await _store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
        Assert.Equal("1", (string?)await Db.HashGetAsync(key, "a"));

        Assert.True(await _store.TryCompleteAsync(id, reserved.Record.FencingToken, new IdempotentResponse(201, [], "{}"u8.ToArray()), Hour, default));

        Assert.Equal("1", (string?)await Db.HashGetAsync(key, "a"));
        var replay = await _store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
        Assert.Equal((ReservationOutcome.Completed, 1, 201), (replay.Outcome, replay.Record.Attempts, replay.Record.Response?.StatusCode));
    }

    [Fact]
    public async Task Initialize_LoadsEveryScriptOnThePrimary()
    {
        await using var store = Create(_connection, NewPrefix("init"));
        await store.InitializeAsync(default);

        var exists = (bool[])(await Server.ExecuteAsync("SCRIPT", ["EXISTS",
            .. new[] { RedisScripts.Reserve, RedisScripts.Complete, RedisScripts.Release, RedisScripts.SetRecoveryPoint, RedisScripts.RenewLease, RedisScripts.Get, RedisScripts.PurgeAudit }
                .Select(s => (object)Convert.ToHexStringLower(System.Security.Cryptography.SHA1.HashData(System.Text.Encoding.UTF8.GetBytes(s))))]))!;
        Assert.All(exists, Assert.True);
    }

    private static async Task<long> ChangesSinceSaveAsync(IConnectionMultiplexer connection)
    {
        var info = (string)(await connection.GetServers().Single().ExecuteAsync("EVAL", ["return redis.call('INFO', 'persistence')", 0]))!;
        var line = info.Split('\n').Single(l => l.StartsWith("rdb_changes_since_last_save:", StringComparison.Ordinal));
        return long.Parse(line.Split(':')[1].Trim(), CultureInfo.InvariantCulture);
    }
}
