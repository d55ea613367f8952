using Oncely.PostgreSql.Tests.Infrastructure;

namespace Oncely.PostgreSql.Tests;

[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlSchemaTests(PostgresFixture fixture) : StoreTestBase(fixture)
{
    [Fact]
    public async Task InitializeAsync_CustomSchemaAndTable_CreatesObjectsThereAndStoreWorks()
    {
        await using var store = CreateStore(DataSource, o =>
        {
            o.Schema = "Billing";
            o.TableName = "Payment_Keys";
        });

        await store.InitializeAsync(default);

        Assert.Equal(1, await ScalarAsync("SELECT count(*) FROM pg_tables WHERE schemaname = 'Billing' AND tablename = 'Payment_Keys'"));
        Assert.Equal(1, await ScalarAsync("SELECT count(*) FROM pg_tables WHERE schemaname = 'Billing' AND tablename = 'Payment_Keys_key_reuse_audit'"));
        Assert.Equal(1, await ScalarAsync("SELECT count(*) FROM pg_sequences WHERE schemaname = 'Billing' AND sequencename = 'Payment_Keys_fencing_seq'"));
        Assert.Equal(Store.Schema.LatestVersion, await ScalarAsync("SELECT max(version) FROM \"Billing\".\"Payment_Keys_schema_version\""));
        var id = NewId();
        var reservation = await store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
        Assert.Equal(ReservationOutcome.Acquired, reservation.Outcome);
        Assert.Equal(1, await ScalarAsync($"SELECT count(*) FROM \"Billing\".\"Payment_Keys\" WHERE idem_key = '{id.Key}'"));

        // The default store in this database does not see the custom table's record.
        Assert.Null(await Store.GetAsync(id, default));
    }

    [Fact]
    public async Task InitializeAsync_SchemaHasUniqueConstraintOnScopeAndKey()
    {
        Assert.Equal(1, await ScalarAsync($"""
            SELECT count(*) FROM pg_constraint
            WHERE conrelid = '{Store.Schema.Table}'::regclass AND contype = 'u'
              AND array_length(conkey, 1) = 3
            """));
    }

    [Fact]
    public async Task InitializeAsync_EightStoresConcurrently_AllSucceedAndMigrationsApplyOnce()
    {
        var sources = Enumerable.Range(0, 8).Select(_ => Server.CreateDataSource(Database, maxPoolSize: 4)).ToArray();
        var stores = sources.Select(s => CreateStore(s, o => o.Schema = "racing")).ToArray();
        try
        {
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var starts = stores.Select(s => Task.Run(async () =>
            {
                await gate.Task;
                await s.InitializeAsync(default);
            })).ToArray();
            gate.SetResult();
            await Task.WhenAll(starts);

            Assert.Equal(Store.Schema.LatestVersion, await ScalarAsync("SELECT count(*) FROM racing.idempotency_records_schema_version"));
            var results = await Task.WhenAll(stores.Select(s => s.TryReserveAsync(NewId(), Fingerprint('a'), Minute, Hour, default).AsTask()));
            Assert.All(results, r => Assert.Equal(ReservationOutcome.Acquired, r.Outcome));
        }
        finally
        {
            foreach (var store in stores)
            {
                await store.DisposeAsync();
            }

            foreach (var source in sources)
            {
                await source.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task InitializeAsync_CalledAgainOrByANewStore_Idempotent()
    {
        await Store.InitializeAsync(default);
        await using var second = CreateStore(DataSource);

        await second.InitializeAsync(default);

        Assert.Equal(Store.Schema.LatestVersion, await ScalarAsync($"SELECT count(*) FROM {Store.Schema.VersionTable}"));
    }

    [Fact]
    public async Task Initialize_SchemaAtVersion3WithRows_AddsAttemptsInPlace_OldRowsReadAsOne_TakeOverCountsOn()
    {
        // A database left at version 3 (no attempts column) by the previous release, with records in every state.
        await using var old = CreateStore(DataSource, o => o.Schema = "at_v3");
        await old.InitializeAsync(default);
        var completed = NewId();
        var stuck = NewId();
        var live = NewId();
        var done = await old.TryReserveAsync(completed, Fingerprint('a'), Minute, Hour, default);
        Assert.True(await old.TryCompleteAsync(completed, done.Record.FencingToken, new IdempotentResponse(201, [], "paid"u8.ToArray()), Hour, default));
        await old.TryReserveAsync(stuck, Fingerprint('a'), TimeSpan.FromMilliseconds(200), Hour, default);
        await old.TryReserveAsync(live, Fingerprint('a'), Hour, Hour, default);
        await using (var downgrade = DataSource.CreateCommand("""
            ALTER TABLE at_v3.idempotency_records DROP COLUMN attempts;
            DELETE FROM at_v3.idempotency_records_schema_version WHERE version >= 4;
            """))
        {
            await downgrade.ExecuteNonQueryAsync();
        }

        Assert.Equal(0, await ScalarAsync("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'at_v3' AND table_name = 'idempotency_records' AND column_name = 'attempts'"));
        var rowsBefore = await ScalarAsync("SELECT count(*) FROM at_v3.idempotency_records");

        await using var upgraded = CreateStore(DataSource, o => o.Schema = "at_v3");
        await upgraded.InitializeAsync(default);

        Assert.Equal(Store.Schema.LatestVersion, await ScalarAsync("SELECT max(version) FROM at_v3.idempotency_records_schema_version"));
        Assert.Equal(1, await ScalarAsync("""
            SELECT count(*) FROM information_schema.columns
            WHERE table_schema = 'at_v3' AND table_name = 'idempotency_records' AND column_name = 'attempts'
              AND data_type = 'integer' AND is_nullable = 'NO' AND column_default = '1'
            """));
        Assert.Equal(rowsBefore, await ScalarAsync("SELECT count(*) FROM at_v3.idempotency_records WHERE attempts = 1"));
        Assert.Equal(1, (await upgraded.GetAsync(completed, default))?.Attempts);
        Assert.Equal(1, (await upgraded.GetAsync(live, default))?.Attempts);
        var replay = await upgraded.TryReserveAsync(completed, Fingerprint('a'), Minute, Hour, default);
        Assert.Equal((ReservationOutcome.Completed, 1), (replay.Outcome, replay.Record.Attempts));
        Assert.Equal("paid"u8.ToArray(), replay.Record.Response!.Body.ToArray());

        // The old row's lease has run out: taking it over is its second attempt.
        await Task.Delay(300);
        var takeOver = await upgraded.TryReserveAsync(stuck, Fingerprint('a'), Minute, Hour, default);
        Assert.Equal((ReservationOutcome.TakenOver, 2), (takeOver.Outcome, takeOver.Record.Attempts));
        Assert.Equal(2, await ScalarAsync($"SELECT attempts FROM at_v3.idempotency_records WHERE idem_key = '{stuck.Key}'"));
        var summary = Assert.Single(await upgraded.FindByKeyAsync(stuck.Tenant, stuck.Key, default));
        Assert.Equal(2, summary.Attempts);
    }

    [Fact]
    public async Task FirstOperation_WithoutInitialize_CreatesSchemaLazily()
    {
        await using var store = CreateStore(DataSource, o => o.Schema = "lazy");

        var reservation = await store.TryReserveAsync(NewId(), Fingerprint('a'), Minute, Hour, default);

        Assert.Equal(ReservationOutcome.Acquired, reservation.Outcome);
    }

    [Theory]
    [InlineData("Schema", "")]
    [InlineData("Schema", "1abc")]
    [InlineData("Schema", "my-schema")]
    [InlineData("Schema", "a\"; DROP TABLE x; --")]
    [InlineData("TableName", "records with space")]
    [InlineData("TableName", "this_table_name_is_much_longer_than_forty_chars")]
    public void Constructor_InvalidIdentifier_ThrowsMessageNamingTheOption(string option, string value)
    {
        var ex = Assert.Throws<InvalidOperationException>(() => CreateStore(DataSource, o =>
        {
            if (option == "Schema")
            {
                o.Schema = value;
            }
            else
            {
                o.TableName = value;
            }
        }));

        Assert.Contains($"PostgreSqlIdempotencyStoreOptions.{option}", ex.Message);
    }

    [Fact]
    public void Constructor_CommandTimeoutUnderOneSecond_ThrowsMessageNamingTheOption()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => CreateStore(DataSource, o => o.CommandTimeout = TimeSpan.FromMilliseconds(100)));

        Assert.Contains("CommandTimeout", ex.Message);
    }

    [Fact]
    public void Schema_LongestTableName_AllDerivedNamesStayDistinctWithinPostgreSqlsLimit()
    {
        // PostgreSQL keeps the first 63 bytes of an identifier: the derived names must differ within them, or two
        // objects of one store would collide (issue 9, item 16c).
        var table = new string('t', PostgreSqlIdempotencyStoreOptions.MaxTableNameLength);
        var schema = new PostgreSqlSchema("oncely", table);
        static string Name(string quotedQualified) => quotedQualified[(quotedQualified.LastIndexOf(".\"", StringComparison.Ordinal) is var dot and >= 0 ? dot + 1 : 0)..].Trim('"');
        var names = new[] { schema.Table, schema.Sequence, schema.AuditTable, schema.VersionTable, schema.ExpiresAtIndex, schema.AuditIndex, schema.AuditRecordedAtIndex, PostgreSqlSchema.Quote(table + "_scope_key_uq") }
            .Select(Name)
            .Select(n => n.Length > 63 ? n[..63] : n)
            .ToArray();

        Assert.Equal(names.Length, names.Distinct(StringComparer.Ordinal).Count());
        Assert.Equal(table, names[0]);
    }
}
