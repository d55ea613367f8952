using Oncely.PostgreSql.Tests.Infrastructure;

namespace Oncely.PostgreSql.Tests;

/// <summary>
/// Issue 9, item 16b: the key-reuse audit has a retention. Entries older than it are deleted in batches, with the
/// server's clock (<c>recorded_at</c>); recent ones are kept.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlAuditRetentionTests(PostgresFixture fixture) : StoreTestBase(fixture)
{
    private static readonly TimeSpan Retention = TimeSpan.FromDays(30);

    [Fact]
    public async Task PurgeAuditAsync_OldAndRecentEntries_DeletesOnlyOldOnesInBatches()
    {
        var old = Enumerable.Range(0, 7).Select(_ => NewId()).ToArray();
        var recent = Enumerable.Range(0, 3).Select(_ => NewId()).ToArray();
        foreach (var id in old.Concat(recent))
        {
            await Store.AppendAsync(new KeyReuseAuditEntry(id, Fingerprint('a'), Fingerprint('b'), "{}", DateTimeOffset.UtcNow), default);
        }

        // Age the first seven entries as the server sees them: recorded 31 days ago.
        await using (var age = DataSource.CreateCommand(
            $"UPDATE {Store.Schema.AuditTable} SET recorded_at = clock_timestamp() - interval '31 days' WHERE idem_key = ANY($1)"))
        {
            age.Parameters.Add(new Npgsql.NpgsqlParameter { Value = old.Select(i => i.Key).ToArray() });
            Assert.Equal(7, await age.ExecuteNonQueryAsync());
        }

        Assert.Equal(3, await Store.PurgeAuditAsync(Retention, 3, default));
        Assert.Equal(3, await Store.PurgeAuditAsync(Retention, 3, default));
        Assert.Equal(1, await Store.PurgeAuditAsync(Retention, 3, default));
        Assert.Equal(0, await Store.PurgeAuditAsync(Retention, 3, default));

        foreach (var id in recent)
        {
            Assert.Equal(1, await ScalarAsync($"SELECT count(*) FROM {Store.Schema.AuditTable} WHERE idem_key = '{id.Key}'"));
        }

        Assert.Equal(0, await ScalarAsync($"SELECT count(*) FROM {Store.Schema.AuditTable} WHERE recorded_at < clock_timestamp() - interval '30 days'"));
    }

    [Fact]
    public async Task PurgeAuditAsync_EntryOnlyOccurredLongAgo_UsesTheServersRecordedTime()
    {
        // The app's clock (OccurredAt) may be skewed; the server's recorded_at decides.
        var id = NewId();
        await Store.AppendAsync(new KeyReuseAuditEntry(id, Fingerprint('a'), Fingerprint('b'), "{}", DateTimeOffset.UtcNow.AddDays(-365)), default);

        Assert.Equal(0, await Store.PurgeAuditAsync(Retention, 100, default));
        Assert.Equal(1, await ScalarAsync($"SELECT count(*) FROM {Store.Schema.AuditTable} WHERE idem_key = '{id.Key}'"));
    }

    [Fact]
    public async Task Schema_AuditRetentionIndex_Exists()
        => Assert.Equal(1, await ScalarAsync($"SELECT count(*) FROM pg_indexes WHERE schemaname = '{Store.Schema.SchemaName}' AND indexname = '{Store.Schema.TableName}_audit_recorded_idx'"));
}
