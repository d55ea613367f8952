using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Oncely.Sqlite.Tests;

public sealed class SqliteIdempotencyStoreTests : IDisposable
{
    private const string Fingerprint = "a3f1c0de4b5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
    private static readonly TimeSpan Lease = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan Expiration = TimeSpan.FromHours(1);

    private readonly FakeTimeProvider _clock = new();
    private readonly TemporaryDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private SqliteIdempotencyStore CreateStore(string file, Action<SqliteIdempotencyStoreOptions>? configure = null)
    {
        var options = new SqliteIdempotencyStoreOptions { ConnectionString = TemporaryDirectory.ConnectionStringFor(file) };
        configure?.Invoke(options);
        return new SqliteIdempotencyStore(options, _clock);
    }

    private static async Task<object?> ScalarAsync(string file, string sql)
    {
        await using var connection = new SqliteConnection(TemporaryDirectory.ConnectionStringFor(file));
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return await command.ExecuteScalarAsync();
    }

    private static IdempotencyRecordId NewId() => new("tenant", "POST /payments", Guid.NewGuid().ToString());

    [Fact]
    public async Task Initialize_NewFile_RecordsSchemaVersionAndSwitchesToWal()
    {
        var file = _directory.NewDatabasePath();
        var store = CreateStore(file);

        await store.InitializeAsync(CancellationToken.None);

        Assert.Equal((long)SqliteSchema.CurrentVersion, await ScalarAsync(file, "SELECT version FROM oncely_schema_version WHERE component = 'oncely_records'"));
        Assert.Equal("wal", await ScalarAsync(file, "PRAGMA journal_mode"));
        Assert.Equal(0L, await ScalarAsync(file, "SELECT COUNT(*) FROM oncely_records"));
        Assert.Equal(0L, await ScalarAsync(file, "SELECT COUNT(*) FROM oncely_key_reuse_audit"));
    }

    [Fact]
    public async Task Initialize_ReopeningExistingFile_KeepsRecordsAndVersion()
    {
        var file = _directory.NewDatabasePath();
        var first = CreateStore(file);
        var id = NewId();
        var reserved = await first.TryReserveAsync(id, Fingerprint, Lease, Expiration, CancellationToken.None);
        Assert.True(await first.TryCompleteAsync(id, reserved.Record.FencingToken, new IdempotentResponse(201, [new("Location", "/p/1")], new byte[] { 1, 2, 3 }), Expiration, CancellationToken.None));

        var reopened = CreateStore(file);
        await reopened.InitializeAsync(CancellationToken.None);
        await reopened.InitializeAsync(CancellationToken.None);

        var stored = await reopened.GetAsync(id, CancellationToken.None);
        Assert.NotNull(stored);
        Assert.Equal(IdempotencyRecordState.Completed, stored.State);
        Assert.Equal(new byte[] { 1, 2, 3 }, stored.Response!.Body.ToArray());
        Assert.Equal(1L, await ScalarAsync(file, "SELECT COUNT(*) FROM oncely_schema_version"));
        Assert.Equal((long)SqliteSchema.CurrentVersion, await ScalarAsync(file, "SELECT version FROM oncely_schema_version"));
    }

    [Fact]
    public async Task Initialize_ManyStoresConcurrentlyOnOneFile_AllSucceed()
    {
        var file = _directory.NewDatabasePath();
        var stores = Enumerable.Range(0, 8).Select(_ => CreateStore(file)).ToArray();

        await Task.WhenAll(stores.Select(s => Task.Run(async () => await s.InitializeAsync(CancellationToken.None))));

        Assert.Equal((long)SqliteSchema.CurrentVersion, await ScalarAsync(file, "SELECT version FROM oncely_schema_version WHERE component = 'oncely_records'"));
    }

    [Fact]
    public async Task Initialize_NewerSchemaVersion_ThrowsUnavailable()
    {
        var file = _directory.NewDatabasePath();
        await CreateStore(file).InitializeAsync(CancellationToken.None);
        await ScalarAsync(file, "UPDATE oncely_schema_version SET version = 999");

        var error = await Assert.ThrowsAsync<IdempotencyStoreUnavailableException>(async () => await CreateStore(file).InitializeAsync(CancellationToken.None));
        Assert.Contains("999", error.Message);
    }

    [Fact]
    public async Task Initialize_CustomTableNames_AreUsed()
    {
        var file = _directory.NewDatabasePath();
        var store = CreateStore(file, o =>
        {
            o.TableName = "payments_idempotency";
            o.AuditTableName = "payments_key_reuse";
        });

        var reserved = await store.TryReserveAsync(NewId(), Fingerprint, Lease, Expiration, CancellationToken.None);

        Assert.Equal(ReservationOutcome.Acquired, reserved.Outcome);
        Assert.Equal(1L, await ScalarAsync(file, "SELECT COUNT(*) FROM payments_idempotency"));
        Assert.Equal(0L, await ScalarAsync(file, "SELECT COUNT(*) FROM payments_key_reuse"));
        Assert.Equal((long)SqliteSchema.CurrentVersion, await ScalarAsync(file, "SELECT version FROM oncely_schema_version WHERE component = 'payments_idempotency'"));
    }

    [Fact]
    public async Task Reserve_DatabaseLockedByAnotherConnection_ThrowsUnavailableWithinBusyTimeout()
    {
        var file = _directory.NewDatabasePath();
        var store = CreateStore(file, o => o.BusyTimeout = TimeSpan.FromMilliseconds(300));
        await store.InitializeAsync(CancellationToken.None);
        var id = NewId();

        await using (var locker = new SqliteConnection(TemporaryDirectory.ConnectionStringFor(file)))
        {
            await locker.OpenAsync();
            await using (var begin = locker.CreateCommand())
            {
                begin.CommandText = "BEGIN EXCLUSIVE; INSERT INTO oncely_key_reuse_audit (tenant, operation, idem_key, stored_fingerprint, attempted_fingerprint, payload, occurred_at) VALUES ('t', 'o', 'k', 'a', 'b', '', 0);";
                await begin.ExecuteNonQueryAsync();
            }

            var watch = Stopwatch.StartNew();
            await Assert.ThrowsAsync<IdempotencyStoreUnavailableException>(
                async () => await store.TryReserveAsync(id, Fingerprint, Lease, Expiration, CancellationToken.None));
            watch.Stop();
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(15), $"gave up after {watch.Elapsed}");

            await using var rollback = locker.CreateCommand();
            rollback.CommandText = "ROLLBACK;";
            await rollback.ExecuteNonQueryAsync();
        }

        var afterUnlock = await store.TryReserveAsync(id, Fingerprint, Lease, Expiration, CancellationToken.None);
        Assert.Equal(ReservationOutcome.Acquired, afterUnlock.Outcome);
    }

    [Fact]
    public async Task Reserve_FileIsNotADatabase_ThrowsUnavailable()
    {
        var file = _directory.NewDatabasePath();
        await File.WriteAllBytesAsync(file, Enumerable.Range(0, 8192).Select(i => (byte)(i * 7)).ToArray());
        var store = CreateStore(file);

        await Assert.ThrowsAsync<IdempotencyStoreUnavailableException>(
            async () => await store.TryReserveAsync(NewId(), Fingerprint, Lease, Expiration, CancellationToken.None));
    }

    [Fact]
    public async Task Reserve_FileCannotBeOpened_ThrowsUnavailable()
    {
        var store = CreateStore(Path.Combine(_directory.Path, "missing-folder", "sub", "oncely.db"));

        await Assert.ThrowsAsync<IdempotencyStoreUnavailableException>(
            async () => await store.TryReserveAsync(NewId(), Fingerprint, Lease, Expiration, CancellationToken.None));
    }

    [Fact]
    public async Task Reserve_TwoStoresSharingOneFile_ExactlyOneWinner()
    {
        var file = _directory.NewDatabasePath();
        var stores = new[] { CreateStore(file), CreateStore(file) };
        var ids = Enumerable.Range(0, 4).Select(_ => NewId()).ToArray();
        using var start = new ManualResetEventSlim();

        var racers = Enumerable.Range(0, 64)
            .Select(i => (Store: stores[i % 2], Id: ids[(i / 2) % ids.Length]))
            .Select(r => Task.Run(async () =>
            {
                start.Wait();
                return (r.Id, Result: await r.Store.TryReserveAsync(r.Id, Fingerprint, Lease, Expiration, CancellationToken.None));
            }))
            .ToArray();
        start.Set();
        var results = await Task.WhenAll(racers);

        foreach (var group in results.GroupBy(r => r.Id))
        {
            Assert.Single(group, r => r.Result.Outcome == ReservationOutcome.Acquired);
            Assert.All(group, r => Assert.True(r.Result.Outcome is ReservationOutcome.Acquired or ReservationOutcome.InProgress));
        }

        Assert.Equal((long)ids.Length, await ScalarAsync(file, "SELECT COUNT(*) FROM oncely_records"));
    }

    [Fact]
    public async Task FencingTokens_AcrossReopenAndRecreation_NeverRepeat()
    {
        var file = _directory.NewDatabasePath();
        var id = NewId();
        var seen = new HashSet<long>();
        for (var round = 0; round < 3; round++)
        {
            var store = CreateStore(file);
            var reserved = await store.TryReserveAsync(id, Fingerprint, Lease, Expiration, CancellationToken.None);
            Assert.Equal(ReservationOutcome.Acquired, reserved.Outcome);
            Assert.True(seen.Add(reserved.Record.FencingToken));
            Assert.True(await store.TryReleaseAsync(id, reserved.Record.FencingToken, CancellationToken.None));
        }

        var last = CreateStore(file);
        var expiring = await last.TryReserveAsync(id, Fingerprint, Lease, TimeSpan.FromSeconds(1), CancellationToken.None);
        Assert.True(seen.Add(expiring.Record.FencingToken));
        _clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(1, await last.PurgeExpiredAsync(10, CancellationToken.None));
        var recreated = await last.TryReserveAsync(id, Fingerprint, Lease, Expiration, CancellationToken.None);
        Assert.True(seen.Add(recreated.Record.FencingToken));
    }

    [Fact]
    public async Task FencingTokens_OneCommitReservationsRolledBack_NeverHandedOutAgainAndStillAscending()
    {
        // The token counter is in the database, so a rolled-back one-commit reservation takes its advance with it; the
        // tokens handed out after it must still differ from the rolled-back ones (they fence a later release).
        var file = _directory.NewDatabasePath();
        var store = CreateStore(file);
        await store.InitializeAsync(CancellationToken.None);
        var id = NewId();
        var seen = new HashSet<long>();
        long previous = 0;
        for (var round = 0; round < 20; round++)
        {
            await using var connection = new SqliteConnection(TemporaryDirectory.ConnectionStringFor(file));
            await connection.OpenAsync();
            await using var transaction = await connection.BeginTransactionAsync();
            var reserved = await store.TryReserveAsync(transaction, id, Fingerprint, Lease, Expiration, TimeSpan.FromSeconds(5), CancellationToken.None);
            Assert.Equal(ReservationOutcome.Acquired, reserved.Outcome);
            Assert.True(seen.Add(reserved.Record!.FencingToken), $"token {reserved.Record.FencingToken} handed out twice");
            Assert.True(reserved.Record.FencingToken > previous);
            previous = reserved.Record.FencingToken;
            await transaction.RollbackAsync();
        }

        var committed = await store.TryReserveAsync(id, Fingerprint, Lease, Expiration, CancellationToken.None);
        Assert.True(seen.Add(committed.Record.FencingToken));
        Assert.False(await store.TryReleaseAsync(id, previous, CancellationToken.None));
        Assert.Equal(committed.Record.FencingToken, (await store.GetAsync(id, CancellationToken.None))!.FencingToken);
    }

    [Fact]
    public async Task Append_AuditEntry_LandsInAuditTable()
    {
        var file = _directory.NewDatabasePath();
        var store = CreateStore(file);
        var occurredAt = _clock.GetUtcNow();
        var entry = new KeyReuseAuditEntry(new IdempotencyRecordId("tenant-é", "POST /payments", "key-1"), "stored-fp", "attempted-fp", "{\"amount\":\"***\"}", occurredAt);

        await store.AppendAsync(entry, CancellationToken.None);

        await using var connection = new SqliteConnection(TemporaryDirectory.ConnectionStringFor(file));
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT tenant, operation, idem_key, stored_fingerprint, attempted_fingerprint, payload, occurred_at FROM oncely_key_reuse_audit";
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal("tenant-é", reader.GetString(0));
        Assert.Equal("POST /payments", reader.GetString(1));
        Assert.Equal("key-1", reader.GetString(2));
        Assert.Equal("stored-fp", reader.GetString(3));
        Assert.Equal("attempted-fp", reader.GetString(4));
        Assert.Equal("{\"amount\":\"***\"}", reader.GetString(5));
        Assert.Equal(occurredAt.ToUnixTimeMilliseconds(), reader.GetInt64(6));
        Assert.False(await reader.ReadAsync());
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("Data Source=:memory:")]
    [InlineData("Data Source=oncely.db;Mode=ReadOnly")]
    [InlineData("Data Source=oncely.db;NoSuchKeyword=1")]
    public void Options_UnusableConnectionString_Throws(string connectionString)
    {
        var options = new SqliteIdempotencyStoreOptions { ConnectionString = connectionString };

        var error = Assert.ThrowsAny<ArgumentException>(options.Validate);
        Assert.Contains("ConnectionString", error.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("records; DROP TABLE x")]
    [InlineData("1records")]
    [InlineData("re\"cords")]
    [InlineData("sqlite_records")]
    [InlineData("tablé")]
    public void Options_UnsafeTableName_Throws(string name)
    {
        var options = new SqliteIdempotencyStoreOptions { ConnectionString = "Data Source=oncely.db", TableName = name };

        var error = Assert.ThrowsAny<ArgumentException>(options.Validate);
        Assert.Contains("TableName", error.Message);
    }

    [Fact]
    public void Options_SameTableAndAuditTable_Throws()
    {
        var options = new SqliteIdempotencyStoreOptions { ConnectionString = "Data Source=oncely.db", TableName = "t", AuditTableName = "T" };

        Assert.ThrowsAny<ArgumentException>(options.Validate);
    }

    [Theory]
    [InlineData("oncely_records", "oncely_records_fence")]
    [InlineData("oncely_records", "ONCELY_RECORDS_FENCE")]
    [InlineData("oncely_records", "oncely_records_expires_at")]
    [InlineData("oncely_records", "oncely_schema_version")]
    [InlineData("payments", "payments")]
    [InlineData("payments_occurred_at", "payments")]
    public void Options_AuditTableNameCollidesWithAStoreObject_RejectedWithWhatToChange(string table, string auditTable)
    {
        // Regression (issue 9, item 16c): these passed validation and then broke every request.
        var options = new SqliteIdempotencyStoreOptions { ConnectionString = "Data Source=oncely.db", TableName = table, AuditTableName = auditTable };

        var error = Assert.ThrowsAny<ArgumentException>(options.Validate);

        Assert.Contains("Choose another AuditTableName", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Options_TableNamedLikeTheSchemaVersionTable_Rejected()
    {
        var options = new SqliteIdempotencyStoreOptions { ConnectionString = "Data Source=oncely.db", TableName = "oncely_schema_version" };

        var error = Assert.ThrowsAny<ArgumentException>(options.Validate);

        Assert.Contains("choose another TableName", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UseSqlite_AuditTableIsTheFenceTable_FailsAtRegistrationNotOnRequests()
    {
        var builder = new TestBuilder();

        Assert.ThrowsAny<ArgumentException>(() => builder.UseSqlite(o =>
        {
            o.ConnectionString = TemporaryDirectory.ConnectionStringFor(_directory.NewDatabasePath());
            o.AuditTableName = "oncely_records_fence";
        }));

        // The default names, and a distinct custom pair, work end to end, audit included.
        var file = _directory.NewDatabasePath();
        var store = CreateStore(file, o =>
        {
            o.TableName = "payments";
            o.AuditTableName = "payments_fence_audit";
        });
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, Fingerprint, Lease, Expiration, CancellationToken.None);
        await store.AppendAsync(new KeyReuseAuditEntry(id, Fingerprint, new string('b', 64), "{}", _clock.GetUtcNow()), CancellationToken.None);
        Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, new IdempotentResponse(201, [], new byte[] { 1 }), Expiration, CancellationToken.None));
        Assert.Equal(1L, await ScalarAsync(file, "SELECT COUNT(*) FROM payments_fence_audit"));
    }

    [Fact]
    public async Task PurgeAuditAsync_OldAndRecentEntries_DeletesOnlyOldOnesInBatchesByStoreClock()
    {
        var file = _directory.NewDatabasePath();
        var store = CreateStore(file);
        var retention = TimeSpan.FromDays(30);
        var old = Enumerable.Range(0, 5).Select(_ => NewId()).ToArray();
        var recent = Enumerable.Range(0, 2).Select(_ => NewId()).ToArray();
        foreach (var id in old)
        {
            await store.AppendAsync(new KeyReuseAuditEntry(id, Fingerprint, new string('b', 64), "{}", _clock.GetUtcNow()), CancellationToken.None);
        }

        _clock.Advance(TimeSpan.FromDays(20));
        foreach (var id in recent)
        {
            await store.AppendAsync(new KeyReuseAuditEntry(id, Fingerprint, new string('b', 64), "{}", _clock.GetUtcNow()), CancellationToken.None);
        }

        Assert.Equal(0, await store.PurgeAuditAsync(retention, 2, CancellationToken.None));
        _clock.Advance(TimeSpan.FromDays(11));

        Assert.Equal(2, await store.PurgeAuditAsync(retention, 2, CancellationToken.None));
        Assert.Equal(2, await store.PurgeAuditAsync(retention, 2, CancellationToken.None));
        Assert.Equal(1, await store.PurgeAuditAsync(retention, 2, CancellationToken.None));
        Assert.Equal(0, await store.PurgeAuditAsync(retention, 2, CancellationToken.None));
        Assert.Equal(2L, await ScalarAsync(file, "SELECT COUNT(*) FROM oncely_key_reuse_audit"));
        foreach (var id in recent)
        {
            Assert.Equal(1L, await ScalarAsync(file, $"SELECT COUNT(*) FROM oncely_key_reuse_audit WHERE idem_key = '{id.Key}'"));
        }
    }

    [Fact]
    public async Task TryRenewLeaseAsync_UsesStoreClock()
    {
        var store = CreateStore(_directory.NewDatabasePath());
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, Fingerprint, Lease, Expiration, CancellationToken.None);
        _clock.Advance(TimeSpan.FromSeconds(50));

        Assert.True(await store.TryRenewLeaseAsync(id, reserved.Record.FencingToken, Lease, CancellationToken.None));

        Assert.Equal(_clock.GetUtcNow() + Lease, (await store.GetAsync(id, CancellationToken.None))!.LeaseExpiresAt);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(3600)]
    public void Options_BusyTimeoutOutOfRange_Throws(int seconds)
    {
        var options = new SqliteIdempotencyStoreOptions { ConnectionString = "Data Source=oncely.db", BusyTimeout = TimeSpan.FromSeconds(seconds) };

        Assert.Throws<ArgumentOutOfRangeException>(options.Validate);
    }

    [Fact]
    public void Options_Defaults_AreDocumentedValues()
    {
        var options = new SqliteIdempotencyStoreOptions();

        Assert.Equal(string.Empty, options.ConnectionString);
        Assert.Equal("oncely_records", options.TableName);
        Assert.Equal("oncely_key_reuse_audit", options.AuditTableName);
        Assert.Equal(TimeSpan.FromSeconds(5), options.BusyTimeout);
    }

    [Fact]
    public async Task UseSqlite_RegistersStoreWithClockFromServices()
    {
        var file = _directory.NewDatabasePath();
        var builder = new TestBuilder();
        builder.Services.AddSingleton<IIdempotencyStore>(new InMemoryIdempotencyStore());

        var returned = builder.UseSqlite(TemporaryDirectory.ConnectionStringFor(file));

        Assert.Same(builder, returned);
        var storeDescriptor = Assert.Single(builder.Services, d => d.ServiceType == typeof(IIdempotencyStore));
        Assert.Null(storeDescriptor.ImplementationInstance);
        var sqliteDescriptor = Assert.Single(builder.Services, d => d.ServiceType == typeof(SqliteIdempotencyStore));
        var store = Assert.IsType<SqliteIdempotencyStore>(sqliteDescriptor.ImplementationFactory!(new ClockOnlyServices(_clock)));
        var reserved = await store.TryReserveAsync(NewId(), Fingerprint, Lease, Expiration, CancellationToken.None);
        Assert.Equal(_clock.GetUtcNow() + Lease, reserved.Record.LeaseExpiresAt);
    }

    [Fact]
    public void UseSqlite_InvalidOptions_FailsAtRegistration()
    {
        var builder = new TestBuilder();

        var error = Assert.ThrowsAny<ArgumentException>(() => builder.UseSqlite(o =>
        {
            o.ConnectionString = "Data Source=oncely.db";
            o.TableName = "bad name";
        }));
        Assert.Contains("TableName", error.Message);
        Assert.Empty(builder.Services);
    }

    private sealed class TestBuilder : IIdempotencyBuilder
    {
        public IServiceCollection Services { get; } = new ServiceCollection();
    }

    private sealed class ClockOnlyServices(TimeProvider clock) : IServiceProvider
    {
        public object? GetService(Type serviceType) => serviceType == typeof(TimeProvider) ? clock : null;
    }
}
