using System.Diagnostics;
using Npgsql;
using Oncely.PostgreSql.Tests.Infrastructure;

namespace Oncely.PostgreSql.Tests;

/// <summary>
/// Issue 10, decision-table row 20: a retry of a Completed request is answered from a read. PostgreSQL shows it in
/// three ways a write cannot hide: a transaction that locks or changes a row takes a transaction id (the server's next
/// xid, <c>pg_snapshot_xmax(pg_current_snapshot())</c>, moves), writes WAL (<c>pg_current_wal_lsn()</c> moves: a row
/// lock and a commit record each), and a row lock leaves its locker in the row's <c>xmax</c>. The server is shared by
/// the collection's classes, which run one after another, but autovacuum may still write now and then; so a
/// measurement is taken up to three times and the quietest one counts.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlReplayIsReadTests(PostgresFixture fixture) : StoreTestBase(fixture)
{
    private const int Replays = 200;

    [Fact]
    public async Task Replay_Completed200Times_TakesNoTransactionIdWritesNoWalAndLocksNothing()
    {
        var id = NewId();
        var reserved = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
        Assert.True(await Store.TryCompleteAsync(id, reserved.Record.FencingToken, new IdempotentResponse(201, [], new byte[] { 1, 2, 3 }), Hour, default));

        // The first read of a freshly written row may set its hint bits; that is not what is measured here.
        Assert.Equal(ReservationOutcome.Completed, (await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default)).Outcome);
        var tokenBefore = await ScalarAsync("SELECT last_value FROM " + Store.Schema.Sequence);

        long fewestXids = long.MaxValue, leastWal = long.MaxValue;
        for (var attempt = 0; attempt < 3 && (fewestXids > 0 || leastWal > 0); attempt++)
        {
            var xidBefore = await ScalarAsync("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint");
            var walBefore = await ScalarAsync("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn");
            for (var i = 0; i < Replays; i++)
            {
                Assert.Equal(ReservationOutcome.Completed, (await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default)).Outcome);
            }

            fewestXids = Math.Min(fewestXids, await ScalarAsync("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint") - xidBefore);
            leastWal = Math.Min(leastWal, await ScalarAsync("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn") - walBefore);
        }

        // A locking reservation takes one xid and writes a lock and a commit record (about 100 bytes) per replay:
        // 200 xids and some 20 KB. A read takes none and writes nothing.
        Assert.True(fewestXids <= 2, $"{Replays} replays took {fewestXids} transaction ids");
        Assert.True(leastWal <= 512, $"{Replays} replays wrote {leastWal} bytes of WAL");
        Assert.Equal(0, await ScalarAsync($"SELECT xmax::text::bigint FROM {Store.Schema.Table} WHERE idem_key = '{id.Key}'"));
        Assert.Equal(tokenBefore, await ScalarAsync("SELECT last_value FROM " + Store.Schema.Sequence));
    }

    [Fact]
    public async Task Replay_WhileAnotherTransactionHoldsTheRowLock_AnswersWithoutWaiting()
    {
        var completed = NewId();
        var running = NewId();
        var reserved = await Store.TryReserveAsync(completed, Fingerprint('a'), Minute, Hour, default);
        Assert.True(await Store.TryCompleteAsync(completed, reserved.Record.FencingToken, new IdempotentResponse(201, [], new byte[] { 7 }), Hour, default));
        Assert.Equal(ReservationOutcome.Acquired, (await Store.TryReserveAsync(running, Fingerprint('a'), Minute, Hour, default)).Outcome);

        await using var locker = await DataSource.OpenConnectionAsync();
        await using var transaction = await locker.BeginTransactionAsync();
        await using (var lockRows = new NpgsqlCommand($"SELECT 1 FROM {Store.Schema.Table} WHERE idem_key IN ('{completed.Key}', '{running.Key}') FOR UPDATE", locker, transaction))
        {
            await lockRows.ExecuteNonQueryAsync();
        }

        var clock = Stopwatch.StartNew();
        for (var i = 0; i < 20; i++)
        {
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            var replay = await Store.TryReserveAsync(completed, Fingerprint('a'), Minute, Hour, bound.Token);
            Assert.Equal(ReservationOutcome.Completed, replay.Outcome);
            Assert.Equal(new byte[] { 7 }, replay.Record.Response!.Body.ToArray());
            Assert.Equal(ReservationOutcome.InProgress, (await Store.TryReserveAsync(running, Fingerprint('a'), Minute, Hour, bound.Token)).Outcome);
            Assert.Equal(ReservationOutcome.FingerprintMismatch, (await Store.TryReserveAsync(completed, Fingerprint('b'), Minute, Hour, bound.Token)).Outcome);
        }

        clock.Stop();
        await transaction.RollbackAsync();
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"60 answers took {clock.Elapsed} while the rows were locked");
    }
}
