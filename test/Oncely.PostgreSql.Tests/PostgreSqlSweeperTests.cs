using Oncely.PostgreSql.Tests.Infrastructure;

namespace Oncely.PostgreSql.Tests;

[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlSweeperTests(PostgresFixture fixture) : StoreTestBase(fixture)
{
    [Fact]
    public async Task PurgeExpiredAsync_ManyExpired_DeletesInBoundedBatchesAndKeepsLiveRows()
    {
        var expired = Enumerable.Range(0, 25).Select(_ => NewId()).ToArray();
        var live = Enumerable.Range(0, 5).Select(_ => NewId()).ToArray();
        foreach (var id in expired)
        {
            var r = await Store.TryReserveAsync(id, Fingerprint('a'), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1), default);
            if (r.Record.FencingToken % 2 == 0)
            {
                await Store.TryCompleteAsync(id, r.Record.FencingToken, new IdempotentResponse(200, [], new byte[] { 1 }), TimeSpan.FromSeconds(1), default);
            }
        }

        foreach (var id in live)
        {
            await Store.TryReserveAsync(id, Fingerprint('a'), TimeSpan.FromSeconds(1), Hour, default);
        }

        await Task.Delay(TimeSpan.FromMilliseconds(1500));

        Assert.Equal(10, await Store.PurgeExpiredAsync(10, default));
        Assert.Equal(10, await Store.PurgeExpiredAsync(10, default));
        Assert.Equal(5, await Store.PurgeExpiredAsync(10, default));
        Assert.Equal(0, await Store.PurgeExpiredAsync(10, default));

        Assert.Equal(0, await ScalarAsync($"SELECT count(*) FROM {Store.Schema.Table} WHERE expires_at <= clock_timestamp()"));
        foreach (var id in live)
        {
            // Lease lapsed but record live: kept, and a retry takes it over.
            Assert.NotNull(await Store.GetAsync(id, default));
        }
    }

    [Fact]
    public async Task PurgeExpiredAsync_NothingExpired_ReturnsZero()
    {
        await Store.TryReserveAsync(NewId(), Fingerprint('a'), Minute, Hour, default);

        Assert.Equal(0, await Store.PurgeExpiredAsync(100, default));
    }

    [Fact]
    public async Task PurgeExpiredAsync_ZeroBatch_Throws()
    {
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await Store.PurgeExpiredAsync(0, default));
    }
}
