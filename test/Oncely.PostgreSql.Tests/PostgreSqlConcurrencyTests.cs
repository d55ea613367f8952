using Npgsql;
using Oncely.PostgreSql.Tests.Infrastructure;

namespace Oncely.PostgreSql.Tests;

[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlConcurrencyTests(PostgresFixture fixture) : StoreTestBase(fixture)
{
    [Fact]
    public async Task TryReserveAsync_64ParallelOnOneId_ExactlyOneAcquired()
    {
        const int Racers = 64;
        await WarmPoolAsync(DataSource, Racers);
        var id = NewId();

        var results = await RaceAsync(Enumerable.Range(0, Racers).Select(_ => (Func<Task<ReservationResult>>)(() => Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default).AsTask())));

        Assert.Single(results, r => r.Outcome == ReservationOutcome.Acquired);
        Assert.All(results.Where(r => r.Outcome != ReservationOutcome.Acquired), r => Assert.Equal(ReservationOutcome.InProgress, r.Outcome));
        var winner = results.Single(r => r.MustExecute).Record.FencingToken;
        Assert.All(results, r => Assert.Equal(winner, r.Record.FencingToken));
    }

    [Fact]
    public async Task TryReserveAsync_ThreeInstancesRacing30KeysTimes10_ExactlyOneWinnerPerKey()
    {
        const int Keys = 30;
        const int ReservesPerKey = 10;
        var sources = Enumerable.Range(0, 3).Select(_ => Server.CreateDataSource(Database, maxPoolSize: 40)).ToArray();
        var stores = sources.Select(s => CreateStore(s)).ToArray();
        try
        {
            foreach (var source in sources)
            {
                await WarmPoolAsync(source, 20);
            }

            var ids = Enumerable.Range(0, Keys).Select(_ => NewId()).ToArray();
            var attempts = (from id in ids
                            from n in Enumerable.Range(0, ReservesPerKey)
                            select (Id: id, Store: stores[(n + Array.IndexOf(ids, id)) % stores.Length]))
                           .OrderBy(_ => Random.Shared.Next())
                           .ToArray();

            var results = await RaceAsync(attempts.Select(a => (Func<Task<ReservationResult>>)(() => a.Store.TryReserveAsync(a.Id, Fingerprint('a'), Minute, Hour, default).AsTask())));

            foreach (var group in results.GroupBy(r => r.Record.Id))
            {
                Assert.Equal(ReservesPerKey, group.Count());
                Assert.Single(group, r => r.Outcome == ReservationOutcome.Acquired);
                Assert.Equal(ReservesPerKey - 1, group.Count(r => r.Outcome == ReservationOutcome.InProgress));
            }

            Assert.Equal(Keys, results.Where(r => r.MustExecute).Select(r => r.Record.FencingToken).Distinct().Count());
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
    public async Task TryReserveAsync_ParallelOnExpiredRecord_ExactlyOneAcquired()
    {
        const int Racers = 32;
        await WarmPoolAsync(DataSource, Racers);
        var id = NewId();
        var old = await Store.TryReserveAsync(id, Fingerprint('a'), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1), default);
        await Store.TryCompleteAsync(id, old.Record.FencingToken, new IdempotentResponse(200, [], new byte[] { 1 }), TimeSpan.FromSeconds(1), default);
        await Task.Delay(TimeSpan.FromMilliseconds(1500));

        var results = await RaceAsync(Enumerable.Range(0, Racers).Select(_ => (Func<Task<ReservationResult>>)(() => Store.TryReserveAsync(id, Fingerprint('b'), Minute, Hour, default).AsTask())));

        Assert.Single(results, r => r.MustExecute);
        Assert.Equal(ReservationOutcome.Acquired, results.Single(r => r.MustExecute).Outcome);
        Assert.All(results.Where(r => !r.MustExecute), r => Assert.Equal(ReservationOutcome.InProgress, r.Outcome));
    }

    [Fact]
    public async Task TryReserveAsync_ParallelOnLapsedLease_ExactlyOneTakesOver()
    {
        const int Racers = 32;
        await WarmPoolAsync(DataSource, Racers);
        var id = NewId();
        var stale = await Store.TryReserveAsync(id, Fingerprint('a'), TimeSpan.FromSeconds(1), Hour, default);
        await Task.Delay(TimeSpan.FromMilliseconds(1500));

        var results = await RaceAsync(Enumerable.Range(0, Racers).Select(_ => (Func<Task<ReservationResult>>)(() => Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default).AsTask())));

        var winner = Assert.Single(results, r => r.MustExecute);
        Assert.Equal(ReservationOutcome.TakenOver, winner.Outcome);
        Assert.NotEqual(stale.Record.FencingToken, winner.Record.FencingToken);
        Assert.All(results.Where(r => !r.MustExecute), r => Assert.Equal(ReservationOutcome.InProgress, r.Outcome));
    }

    [Fact]
    public async Task TryCompleteAsync_RacingReserves_EveryReserveSeesAConsistentState()
    {
        await WarmPoolAsync(DataSource, 16);
        var id = NewId();
        var first = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        var reserves = Enumerable.Range(0, 16).Select(_ => (Func<Task<ReservationResult>>)(() => Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default).AsTask()));
        var race = RaceAsync(reserves);
        Assert.True(await Store.TryCompleteAsync(id, first.Record.FencingToken, new IdempotentResponse(201, [], new byte[] { 7 }), Hour, default));
        var results = await race;

        Assert.All(results, r => Assert.Contains(r.Outcome, new[] { ReservationOutcome.InProgress, ReservationOutcome.Completed }));
        Assert.All(results.Where(r => r.Outcome == ReservationOutcome.Completed), r => Assert.Equal(new byte[] { 7 }, r.Record.Response!.Body.ToArray()));
    }

    /// <summary>Opens <paramref name="count"/> connections at once and returns them to the pool, so every racer gets its own.</summary>
    private static async Task WarmPoolAsync(NpgsqlDataSource source, int count)
    {
        var connections = await Task.WhenAll(Enumerable.Range(0, count).Select(_ => source.OpenConnectionAsync().AsTask()));
        foreach (var connection in connections)
        {
            await connection.DisposeAsync();
        }
    }

    /// <summary>Starts every operation on its own thread-pool item, released together by one gate.</summary>
    private static async Task<ReservationResult[]> RaceAsync(IEnumerable<Func<Task<ReservationResult>>> operations)
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var tasks = operations.Select(op => Task.Run(async () =>
        {
            await gate.Task;
            return await op();
        })).ToArray();
        gate.SetResult();
        return await Task.WhenAll(tasks);
    }
}
