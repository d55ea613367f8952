using System.Diagnostics;
using Npgsql;
using Oncely.PostgreSql.Tests.Infrastructure;

namespace Oncely.PostgreSql.Tests;

/// <summary>
/// Issue 20: <see cref="IdempotencyExecution.ReserveAndExecuteAsync"/> on PostgreSQL sends the one-commit reservation in
/// front of the transaction's first statements, one round trip, and keeps every promise of the separate reservation: a
/// held key is refused and nothing of the batch commits, a racer's committed answer is replayed (also when the batch
/// failed because of the racer), an expired record is replaced, a wait on an uncommitted duplicate is bounded, and the
/// application's own errors reach it unchanged.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlReserveAndExecuteTests(PostgresFixture fixture) : StoreTestBase(fixture)
{
    private static readonly TimeSpan ShortLease = TimeSpan.FromMilliseconds(400);

    [Fact]
    public async Task NewKey_ReservationAndTheBatchInOneExecution_TheBatchLeftAsGivenAndOneCommitReplayed()
    {
        await CreateTablesAsync();
        var executor = Executor();
        var id = NewId();
        var execution = (await executor.BeginOneCommitAsync(id, Fingerprint('a'))).Execution!;
        await using (var connection = await DataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        await using (var batch = PaymentBatch(connection, transaction, id, "first"))
        {
            batch.Timeout = 3;
            var executions = await CountDriverExecutionsAsync(async () =>
            {
                var affected = await execution.ReserveAndExecuteAsync(batch);
                Assert.Equal(2, affected); // the payment row and the balance row; the record's insert is not counted
            });

            var sent = Assert.Single(executions); // one batch, one round trip: the reservation went with the payment

            // The store's part of it is one call of the schema's function (version 5), not three statements to plan.
            Assert.Contains(sent, text => text.Contains("_reserve_fresh\"(", StringComparison.Ordinal));
            Assert.DoesNotContain(sent, text => text.Contains("set_config", StringComparison.Ordinal));
            Assert.True(execution.IsReserved);
            Assert.True(execution.FencingToken > 0);
            Assert.Equal(2, batch.BatchCommands.Count);
            Assert.StartsWith("INSERT INTO rae_payments", batch.BatchCommands[0].CommandText, StringComparison.Ordinal);
            Assert.Equal(3, batch.Timeout);

            // Invisible to others until the commit.
            Assert.Null(await Store.GetAsync(id, default));
            await execution.CompleteAndCommitAsync(transaction, Answer("first"));
        }

        var retry = await executor.BeginOneCommitAsync(id, Fingerprint('a'));
        Assert.Equal(IdempotencyDecisionKind.Replay, retry.Kind);
        Assert.Equal("first", System.Text.Encoding.UTF8.GetString(retry.Record!.Response!.Body.Span));
        Assert.Equal(1, await PaymentsAsync(id));
    }

    [Fact]
    public async Task SeparateReservation_TwoExecutions_TheBaselineOfTheCountAbove()
    {
        await CreateTablesAsync();
        var execution = (await Executor().BeginOneCommitAsync(NewId(), Fingerprint('a'))).Execution!;
        await using var connection = await DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await using var batch = PaymentBatch(connection, transaction, execution.Id, "first");

        var executions = await CountDriverExecutionsAsync(async () =>
        {
            await execution.ReserveInTransactionAsync(transaction);
            await batch.ExecuteNonQueryAsync();
        });

        Assert.Equal(2, executions.Count);
    }

    [Fact]
    public async Task KeyCompletedByARacerAfterTheRead_ConflictReplaysTheRacersAnswer_NothingOfTheBatchCommits()
    {
        await CreateTablesAsync();
        var executor = Executor();
        var id = NewId();
        var late = (await executor.BeginOneCommitAsync(id, Fingerprint('a'))).Execution!; // read: nothing there yet
        await using (var racer = (await executor.BeginAsync(id, Fingerprint('a'))).Execution!)
        {
            Assert.Equal(CompletionOutcome.Completed, await racer.CompleteAsync(Answer("racer")));
        }

        await using (var connection = await DataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        await using (var batch = PaymentBatch(connection, transaction, id, "late"))
        {
            var conflict = await Assert.ThrowsAsync<IdempotencyReservationConflictException>(() => late.ReserveAndExecuteAsync(batch).AsTask());
            Assert.Equal(IdempotencyDecisionKind.Replay, conflict.Kind);
            Assert.Equal("racer", System.Text.Encoding.UTF8.GetString(conflict.Record!.Response!.Body.Span));
            Assert.False(late.IsReserved);
            Assert.Equal(2, batch.BatchCommands.Count);
        }

        Assert.Equal(0, await PaymentsAsync(id));
        Assert.Equal(0L, await BalanceAsync(id));
    }

    [Fact]
    public async Task DuplicateWaitsOnTheFirst_ItsBatchFailsOnTheUniqueKey_AnsweredFromTheFirstsRecord()
    {
        await CreateTablesAsync();
        var executor = Executor();
        var id = NewId();
        var first = (await executor.BeginOneCommitAsync(id, Fingerprint('a'))).Execution!;
        var second = (await executor.BeginOneCommitAsync(id, Fingerprint('a'))).Execution!;
        await using var firstConnection = await DataSource.OpenConnectionAsync();
        await using var firstTransaction = await firstConnection.BeginTransactionAsync();
        await using (var batch = PaymentBatch(firstConnection, firstTransaction, id, "first"))
        {
            await first.ReserveAndExecuteAsync(batch);
        }

        var duplicate = Task.Run(async () =>
        {
            await using var connection = await DataSource.OpenConnectionAsync();
            await using var transaction = await connection.BeginTransactionAsync();
            await using var batch = PaymentBatch(connection, transaction, id, "duplicate");
            await second.ReserveAndExecuteAsync(batch);
            await second.CompleteAndCommitAsync(transaction, Answer("duplicate"));
        });
        await Task.Delay(300);
        Assert.False(duplicate.IsCompleted, "the duplicate must wait for the first transaction");

        await first.CompleteAndCommitAsync(firstTransaction, Answer("first"));

        // The duplicate's reservation answered no row once the first committed, so its payment insert ran and hit the
        // unique key: reported as a conflict, not as the unique violation.
        var conflict = await Assert.ThrowsAsync<IdempotencyReservationConflictException>(() => duplicate);
        var answer = await executor.ResolveConflictAsync(conflict, id, Fingerprint('a'));
        Assert.Equal(IdempotencyDecisionKind.Replay, answer.Kind);
        Assert.Equal("first", System.Text.Encoding.UTF8.GetString(answer.Record!.Response!.Body.Span));
        Assert.Equal(1, await PaymentsAsync(id));
        Assert.Equal(-100L, await BalanceAsync(id));
    }

    [Fact]
    public async Task ManyParallelAttemptsOfOneKey_OnePaymentAndEveryAnswerTheSame()
    {
        await CreateTablesAsync();
        var executor = Executor();
        var id = NewId();
        var attempts = Enumerable.Range(0, 12).Select(i => Task.Run(async () =>
        {
            var decision = await executor.BeginOneCommitAsync(id, Fingerprint('a'));
            if (decision.Kind != IdempotencyDecisionKind.Execute)
            {
                return (decision.Kind, Text(decision.Record!));
            }

            try
            {
                await using var connection = await DataSource.OpenConnectionAsync();
                await using var transaction = await connection.BeginTransactionAsync();
                await using var batch = PaymentBatch(connection, transaction, id, $"attempt-{i}");
                await decision.Execution!.ReserveAndExecuteAsync(batch);
                await decision.Execution.CompleteAndCommitAsync(transaction, Answer($"attempt-{i}"));
                return (IdempotencyDecisionKind.Execute, $"attempt-{i}");
            }
            catch (IdempotencyReservationConflictException conflict)
            {
                var answer = await executor.ResolveConflictAsync(conflict, id, Fingerprint('a'));
                return (answer.Kind, answer.Record is { Response: not null } record ? Text(record) : "");
            }
        })).ToArray();

        var answers = await Task.WhenAll(attempts);

        var executed = Assert.Single(answers, a => a.Item1 == IdempotencyDecisionKind.Execute);
        Assert.All(answers, a => Assert.True(
            a.Item1 == IdempotencyDecisionKind.Execute || (a.Item1 == IdempotencyDecisionKind.Replay && a.Item2 == executed.Item2),
            $"{a.Item1} {a.Item2}"));
        Assert.Equal(1, await PaymentsAsync(id));
        Assert.Equal(-100L, await BalanceAsync(id));
    }

    [Fact]
    public async Task ApplicationStatementFails_ItsOwnErrorUnchanged_AndNoRecordKept()
    {
        await CreateTablesAsync();
        var id = NewId();
        var execution = (await Executor().BeginOneCommitAsync(id, Fingerprint('a'))).Execution!;
        await using (var connection = await DataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        await using (var batch = new NpgsqlBatch(connection, transaction))
        {
            // A missing table of the application's: its own 42P01, not the store's "no records table" configuration error.
            batch.BatchCommands.Add(new NpgsqlBatchCommand("INSERT INTO rae_no_such_table VALUES (1)"));
            var error = await Assert.ThrowsAsync<PostgresException>(() => execution.ReserveAndExecuteAsync(batch).AsTask());
            Assert.Equal(PostgresErrorCodes.UndefinedTable, error.SqlState);
            Assert.Single(batch.BatchCommands);
        }

        Assert.Null(await Store.GetAsync(id, default));
        Assert.Equal(IdempotencyDecisionKind.Execute, (await Executor().BeginOneCommitAsync(id, Fingerprint('a'))).Kind);
    }

    [Fact]
    public async Task ExpiredRecordHoldsTheKey_ReplacedInTheSameTransactionAndTheBatchCommitted()
    {
        await CreateTablesAsync();
        var shortLived = new IdempotencyExecutor(Store, new IdempotencyEngineOptions { Lease = ShortLease, RenewLease = false, Expiration = ShortLease });
        var id = NewId();
        long oldToken;
        await using (var old = (await shortLived.BeginAsync(id, Fingerprint('a'))).Execution!)
        {
            oldToken = old.FencingToken;
            Assert.Equal(CompletionOutcome.Completed, await old.CompleteAsync(Answer("old")));
        }

        await Task.Delay(ShortLease * 2);
        var execution = (await Executor().BeginOneCommitAsync(id, Fingerprint('a'))).Execution!;
        await using (var connection = await DataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        await using (var batch = PaymentBatch(connection, transaction, id, "new"))
        {
            Assert.Equal(2, await execution.ReserveAndExecuteAsync(batch));
            Assert.False(execution.IsTakeOver);
            Assert.True(execution.FencingToken > oldToken);
            await execution.CompleteAndCommitAsync(transaction, Answer("new"));
        }

        var retry = await Executor().BeginOneCommitAsync(id, Fingerprint('a'));
        Assert.Equal(IdempotencyDecisionKind.Replay, retry.Kind);
        Assert.Equal("new", Text(retry.Record!));
        Assert.Equal(1, await PaymentsAsync(id));
    }

    [Fact]
    public async Task LockWaitRunsOut_InProgress_TheBatchDidNotRun_AndTheTransactionsLockTimeoutIsKeptOnSuccess()
    {
        await CreateTablesAsync();
        var executor = new IdempotencyExecutor(Store, new IdempotencyEngineOptions { ReservationLockTimeout = TimeSpan.FromMilliseconds(200) });
        var id = NewId();
        await using var holderConnection = await DataSource.OpenConnectionAsync();
        await using var holderTransaction = await holderConnection.BeginTransactionAsync();
        await (await executor.BeginOneCommitAsync(id, Fingerprint('a'))).Execution!.ReserveInTransactionAsync(holderTransaction);

        await using (var connection = await DataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        await using (var batch = PaymentBatch(connection, transaction, id, "waiting"))
        {
            var execution = (await executor.BeginOneCommitAsync(id, Fingerprint('a'))).Execution!;
            var watch = Stopwatch.StartNew();
            var conflict = await Assert.ThrowsAsync<IdempotencyReservationConflictException>(() => execution.ReserveAndExecuteAsync(batch).AsTask());
            Assert.Equal(IdempotencyDecisionKind.InProgress, conflict.Kind);
            Assert.InRange(watch.Elapsed, TimeSpan.FromMilliseconds(150), TimeSpan.FromSeconds(4));
        }

        await holderTransaction.RollbackAsync();
        Assert.Equal(0, await PaymentsAsync(id));

        // Reserved: the transaction's own lock_timeout is back for its later statements.
        await using var third = await DataSource.OpenConnectionAsync();
        await using var thirdTransaction = await third.BeginTransactionAsync();
        await using (var set = new NpgsqlCommand("SET LOCAL lock_timeout = '7s'", third, thirdTransaction))
        {
            await set.ExecuteNonQueryAsync();
        }

        await using (var batch = PaymentBatch(third, thirdTransaction, id, "third"))
        {
            await (await executor.BeginOneCommitAsync(id, Fingerprint('a'))).Execution!.ReserveAndExecuteAsync(batch);
        }

        await using var show = new NpgsqlCommand("SHOW lock_timeout", third, thirdTransaction);
        Assert.Equal("7s", (string)(await show.ExecuteScalarAsync())!);
    }

    [Fact]
    public async Task TwoCommitMode_OnlyExecutesTheBatch()
    {
        await CreateTablesAsync();
        var id = NewId();
        await using var execution = (await Executor().BeginAsync(id, Fingerprint('a'))).Execution!;
        Assert.False(execution.IsOneCommit);
        await using (var connection = await DataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        await using (var batch = PaymentBatch(connection, transaction, id, "two-commit"))
        {
            Assert.Equal(2, await execution.ReserveAndExecuteAsync(batch));
            await execution.CompleteAndCommitAsync(transaction, Answer("two-commit"));
        }

        Assert.Equal(1, await PaymentsAsync(id));
        Assert.Equal(IdempotencyRecordState.Completed, (await Store.GetAsync(id, default))!.State);
    }

    [Fact]
    public async Task BatchWithoutATransaction_RefusedWithAClearError_NothingRun()
    {
        await CreateTablesAsync();
        var id = NewId();
        var execution = (await Executor().BeginOneCommitAsync(id, Fingerprint('a'))).Execution!;
        await using var connection = await DataSource.OpenConnectionAsync();
        await using var batch = PaymentBatch(connection, null, id, "no-transaction");

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => execution.ReserveAndExecuteAsync(batch).AsTask());

        Assert.Contains("Transaction", error.Message, StringComparison.Ordinal);
        Assert.False(execution.IsReserved);
        Assert.Equal(0, await PaymentsAsync(id));
    }

    private IdempotencyExecutor Executor() => new(Store, new IdempotencyEngineOptions { Lease = ShortLease, RenewLease = false, ReservationLockTimeout = TimeSpan.FromSeconds(5) });

    private async Task CreateTablesAsync()
    {
        await using var command = DataSource.CreateCommand("""
            CREATE TABLE IF NOT EXISTS rae_payments (idem_key text PRIMARY KEY, note text NOT NULL);
            CREATE TABLE IF NOT EXISTS rae_balances (idem_key text PRIMARY KEY, balance bigint NOT NULL);
            """);
        await command.ExecuteNonQueryAsync();
    }

    // The transaction's first statements: the payment (unique per key) and a balance movement.
    private static NpgsqlBatch PaymentBatch(NpgsqlConnection connection, NpgsqlTransaction? transaction, IdempotencyRecordId id, string note)
    {
        var batch = new NpgsqlBatch(connection, transaction);
        var payment = new NpgsqlBatchCommand("INSERT INTO rae_payments (idem_key, note) VALUES ($1, $2)");
        payment.Parameters.Add(new NpgsqlParameter<string> { TypedValue = id.Key });
        payment.Parameters.Add(new NpgsqlParameter<string> { TypedValue = note });
        var balance = new NpgsqlBatchCommand("INSERT INTO rae_balances (idem_key, balance) VALUES ($1, -100)");
        balance.Parameters.Add(new NpgsqlParameter<string> { TypedValue = id.Key });
        batch.BatchCommands.Add(payment);
        batch.BatchCommands.Add(balance);
        return batch;
    }

    private async Task<int> PaymentsAsync(IdempotencyRecordId id)
    {
        await using var command = DataSource.CreateCommand("SELECT COUNT(*) FROM rae_payments WHERE idem_key = $1");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = id.Key });
        return Convert.ToInt32(await command.ExecuteScalarAsync());
    }

    private async Task<long> BalanceAsync(IdempotencyRecordId id)
    {
        await using var command = DataSource.CreateCommand("SELECT COALESCE(SUM(balance), 0) FROM rae_balances WHERE idem_key = $1");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = id.Key });
        return Convert.ToInt64(await command.ExecuteScalarAsync());
    }

    // Npgsql's own executions (one activity per command or batch sent) made under a parent activity of this test, each
    // as the texts of its tags (the statement text among them).
    private static async Task<List<string[]>> CountDriverExecutionsAsync(Func<Task> work)
    {
        var executions = new System.Collections.Concurrent.ConcurrentQueue<string[]>();
        using var parent = new Activity("reserve-and-execute-probe");
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "Npgsql",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                if (activity.TraceId == parent.TraceId)
                {
                    executions.Enqueue([activity.DisplayName, .. activity.TagObjects.Select(t => t.Value?.ToString() ?? "")]);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        parent.SetIdFormat(ActivityIdFormat.W3C);
        parent.Start();
        try
        {
            await work();
        }
        finally
        {
            parent.Stop();
        }

        return [.. executions];
    }

    private static IdempotentResponse Answer(string text) => new(201, [new("Content-Type", "text/plain")], System.Text.Encoding.UTF8.GetBytes(text));

    private static string Text(IdempotencyRecord record) => System.Text.Encoding.UTF8.GetString(record.Response!.Body.Span);
}
