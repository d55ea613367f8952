using Npgsql;
using Oncely.PostgreSql.Tests.Infrastructure;

namespace Oncely.PostgreSql.Tests;

/// <summary>What the administration capability needs from the PostgreSQL schema (the conformance suite covers its behaviour).</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlStoreAdministrationTests(PostgresFixture fixture) : StoreTestBase(fixture)
{
    [Fact]
    public async Task ListRecords_InProgressOnly_ReadsThePartialIndexOfInProgressRecords()
    {
        var plan = await PlanAsync(PostgreSqlIdempotencyStore.ListRecordsSql(Store.Schema.Table, new() { State = IdempotencyRecordState.InProgress, CreatedBefore = DateTimeOffset.UtcNow }));

        Assert.Contains("idempotency_records_in_progress_idx", plan, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Initialize_SchemaAtVersion2_AddsTheIndexOfInProgressRecords()
    {
        await using var store = CreateStore(DataSource, o => o.Schema = "upgrading");
        await store.InitializeAsync(default);
        await using (var downgrade = DataSource.CreateCommand("""
            DROP INDEX upgrading.idempotency_records_in_progress_idx;
            ALTER TABLE upgrading.idempotency_records DROP COLUMN attempts;
            DELETE FROM upgrading.idempotency_records_schema_version WHERE version >= 3;
            """))
        {
            await downgrade.ExecuteNonQueryAsync();
        }

        await using var upgraded = CreateStore(DataSource, o => o.Schema = "upgrading");
        await upgraded.InitializeAsync(default);

        Assert.Equal(1, await ScalarAsync("SELECT count(*) FROM pg_indexes WHERE schemaname = 'upgrading' AND indexname = 'idempotency_records_in_progress_idx'"));
        Assert.Equal(Store.Schema.LatestVersion, await ScalarAsync("SELECT max(version) FROM upgrading.idempotency_records_schema_version"));
    }

    [Fact]
    public async Task ListRecords_EqualCreationTimes_PagesInTheOrderOfOnePageWithoutRepeats()
    {
        await using var store = CreateStore(DataSource, o => o.TableName = "ties");
        var tenants = new[] { "b", "A", "a", "é", "Z" };
        foreach (var tenant in tenants)
        {
            await store.TryReserveAsync(NewId(tenant), Fingerprint('a'), Minute, Hour, default);
            await store.TryReserveAsync(NewId(tenant, "POST /refunds"), Fingerprint('a'), Minute, Hour, default);
        }

        await using (var sameInstant = DataSource.CreateCommand("UPDATE oncely.ties SET created_at = now()"))
        {
            await sameInstant.ExecuteNonQueryAsync();
        }

        var onePage = await store.ListRecordsAsync(new() { Limit = 500 }, default);
        var paged = new List<IdempotencyRecordSummary>();
        var page = await store.ListRecordsAsync(new() { Limit = 3 }, default);
        paged.AddRange(page.Records);
        while (page.Continuation is { } continuation)
        {
            page = await store.ListRecordsAsync(new() { Limit = 3, Continuation = continuation }, default);
            paged.AddRange(page.Records);
        }

        Assert.Equal(10, onePage.Records.Count);
        Assert.Equal(onePage.Records.Select(r => r.Id), paged.Select(r => r.Id));
        Assert.Equal(10, paged.Select(r => r.Id).Distinct().Count());
    }

    private async Task<string> PlanAsync(string sql)
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        await using (var noSeqScan = new NpgsqlCommand("SET enable_seqscan = off", connection))
        {
            // An empty table is cheapest to scan; forbidding that shows which index the planner can use.
            await noSeqScan.ExecuteNonQueryAsync();
        }

        await using var command = new NpgsqlCommand("EXPLAIN " + sql, connection);
        command.Parameters.AddWithValue("limit", 51);
        command.Parameters.AddWithValue("created_before", DateTimeOffset.UtcNow);
        var plan = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            plan.Add(reader.GetString(0));
        }

        return string.Join(Environment.NewLine, plan);
    }
}
