using System.Data.Common;
using Oncely.Testing;

namespace Oncely.Storage.Specification;

/// <summary>
/// One-commit mode (<see cref="IdempotencyExecution.ReserveInTransactionAsync"/>), shared by every SQL store: the
/// reservation, the business write and the completion are one transaction; a concurrent duplicate waits for it and
/// replays, or executes when it rolled back; a two-commit writer's expired lease is taken over, fenced.
/// </summary>
public abstract class OneCommitReservationSpecification : IAsyncLifetime
{
    private const string Fingerprint = "1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    private static readonly TimeSpan ShortLease = TimeSpan.FromMilliseconds(400);

    protected IIdempotencyStore Store { get; private set; } = null!;

    /// <summary>Creates the store (schema initialised) on the test's database.</summary>
    protected abstract Task<IIdempotencyStore> CreateStoreAsync();

    /// <summary>Opens the application's own connection to the store's database.</summary>
    protected abstract Task<DbConnection> OpenConnectionAsync();

    protected virtual ValueTask DisposeStoreAsync(IIdempotencyStore store) => store is IAsyncDisposable d ? d.DisposeAsync() : ValueTask.CompletedTask;

    public async Task InitializeAsync()
    {
        Store = await CreateStoreAsync();
        await using var connection = await OpenConnectionAsync();
        await TestSql.ExecuteAsync(connection, null, "CREATE TABLE IF NOT EXISTS one_commit_payments (idem_key TEXT NOT NULL, note TEXT NOT NULL)");
    }

    public async Task DisposeAsync() => await DisposeStoreAsync(Store);

    [Fact]
    public async Task ReserveInTransaction_Committed_OneTransactionThenReplayedFromARead()
    {
        var executor = Executor();
        var id = NewId();

        var decision = await executor.BeginOneCommitAsync(id, Fingerprint);
        Assert.Equal(IdempotencyDecisionKind.Execute, decision.Kind);
        Assert.True(decision.Execution!.IsOneCommit);
        Assert.False(decision.Execution.IsReserved);
        await using (var connection = await OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await decision.Execution.ReserveInTransactionAsync(transaction);

            // Invisible to others until the commit.
            Assert.True(decision.Execution.IsReserved);
            Assert.True(decision.Execution.FencingToken > 0);
            await PayAsync(connection, transaction, id, "first");
            await decision.Execution.CompleteInTransactionAsync(transaction, Answer("first"));
            await transaction.CommitAsync();
        }

        var retry = await executor.BeginOneCommitAsync(id, Fingerprint);

        Assert.Equal(IdempotencyDecisionKind.Replay, retry.Kind);
        Assert.Equal("first", System.Text.Encoding.UTF8.GetString(retry.Record!.Response!.Body.Span));
        Assert.Equal(1, await CountPaymentsAsync(id));
    }

    [Fact]
    public async Task ReserveInTransaction_RolledBack_NoRecordAndTheRetryExecutes()
    {
        var executor = Executor();
        var id = NewId();
        var execution = (await executor.BeginOneCommitAsync(id, Fingerprint)).Execution!;
        await using (var connection = await OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await execution.ReserveInTransactionAsync(transaction);
            await PayAsync(connection, transaction, id, "doomed");
            await execution.CompleteInTransactionAsync(transaction, Answer("doomed"));
            await transaction.RollbackAsync();
        }

        Assert.Null(await Store.GetAsync(id, CancellationToken.None));
        Assert.Equal(CompletionOutcome.NotRecorded, await execution.CompleteAsync(Answer("late")));
        Assert.Equal(IdempotencyDecisionKind.Execute, (await executor.BeginOneCommitAsync(id, Fingerprint)).Kind);
        Assert.Equal(0, await CountPaymentsAsync(id));
    }

    [Fact]
    public async Task ReserveInTransaction_DuplicateWhileTheFirstIsUncommitted_WaitsThenReplaysTheFirstAnswer()
    {
        var executor = Executor();
        var id = NewId();
        var first = (await executor.BeginOneCommitAsync(id, Fingerprint)).Execution!;
        var second = (await executor.BeginOneCommitAsync(id, Fingerprint)).Execution!;
        await using var firstConnection = await OpenConnectionAsync();
        await using var firstTransaction = await firstConnection.BeginTransactionAsync();
        await first.ReserveInTransactionAsync(firstTransaction);

        var duplicate = Task.Run(async () =>
        {
            await using var connection = await OpenConnectionAsync();
            await using var transaction = await connection.BeginTransactionAsync();
            await second.ReserveInTransactionAsync(transaction);
            await PayAsync(connection, transaction, id, "duplicate");
            await transaction.CommitAsync();
        });
        await Task.Delay(300);
        Assert.False(duplicate.IsCompleted, "the duplicate must wait for the first transaction");

        await PayAsync(firstConnection, firstTransaction, id, "first");
        await first.CompleteInTransactionAsync(firstTransaction, Answer("first"));
        await firstTransaction.CommitAsync();
        var conflict = await Assert.ThrowsAsync<IdempotencyReservationConflictException>(() => duplicate);
        var answer = await executor.ResolveConflictAsync(conflict, id, Fingerprint);

        Assert.Equal(IdempotencyDecisionKind.Replay, conflict.Kind);
        Assert.Equal(IdempotencyDecisionKind.Replay, answer.Kind);
        Assert.Equal("first", System.Text.Encoding.UTF8.GetString(answer.Record!.Response!.Body.Span));
        Assert.Equal(1, await CountPaymentsAsync(id));
    }

    [Fact]
    public async Task ReserveInTransaction_DuplicateWhileTheFirstRollsBack_DuplicateExecutes()
    {
        var executor = Executor();
        var id = NewId();
        var first = (await executor.BeginOneCommitAsync(id, Fingerprint)).Execution!;
        var second = (await executor.BeginOneCommitAsync(id, Fingerprint)).Execution!;
        await using var firstConnection = await OpenConnectionAsync();
        await using var firstTransaction = await firstConnection.BeginTransactionAsync();
        await first.ReserveInTransactionAsync(firstTransaction);
        await PayAsync(firstConnection, firstTransaction, id, "doomed");

        var duplicate = Task.Run(async () =>
        {
            await using var connection = await OpenConnectionAsync();
            await using var transaction = await connection.BeginTransactionAsync();
            await second.ReserveInTransactionAsync(transaction);
            await PayAsync(connection, transaction, id, "second");
            await second.CompleteInTransactionAsync(transaction, Answer("second"));
            await transaction.CommitAsync();
        });
        await Task.Delay(300);
        await firstTransaction.RollbackAsync();
        await duplicate;

        var retry = await executor.BeginOneCommitAsync(id, Fingerprint);
        Assert.Equal(IdempotencyDecisionKind.Replay, retry.Kind);
        Assert.Equal("second", System.Text.Encoding.UTF8.GetString(retry.Record!.Response!.Body.Span));
        Assert.Equal(1, await CountPaymentsAsync(id));
    }

    [Fact]
    public async Task ReserveInTransaction_TwoCommitWriterHoldsAValidLease_InProgress()
    {
        var executor = Executor();
        var id = NewId();
        await using var holder = (await executor.BeginAsync(id, Fingerprint)).Execution!;
        var decision = await executor.BeginOneCommitAsync(id, Fingerprint);
        Assert.Equal(IdempotencyDecisionKind.Execute, decision.Kind); // the store decides, in the transaction

        await using var connection = await OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        var conflict = await Assert.ThrowsAsync<IdempotencyReservationConflictException>(() => decision.Execution!.ReserveInTransactionAsync(transaction).AsTask());

        Assert.Equal(IdempotencyDecisionKind.InProgress, conflict.Kind);
    }

    [Fact]
    public async Task ReserveInTransaction_TwoCommitWriterLeaseExpired_TakenOverFencedAndTheStaleCompletionRefused()
    {
        var executor = Executor();
        var id = NewId();
        await using var stale = (await executor.BeginAsync(id, Fingerprint)).Execution!;
        await Task.Delay(ShortLease * 2);

        var execution = (await executor.BeginOneCommitAsync(id, Fingerprint)).Execution!;
        await using (var connection = await OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await execution.ReserveInTransactionAsync(transaction);
            Assert.True(execution.IsTakeOver);
            Assert.True(execution.FencingToken > stale.FencingToken);
            await PayAsync(connection, transaction, id, "taken-over");
            await execution.CompleteInTransactionAsync(transaction, Answer("taken-over"));
            await transaction.CommitAsync();
        }

        Assert.Equal(CompletionOutcome.LeaseLost, await stale.CompleteAsync(Answer("stale")));
        var retry = await executor.BeginOneCommitAsync(id, Fingerprint);
        Assert.Equal("taken-over", System.Text.Encoding.UTF8.GetString(retry.Record!.Response!.Body.Span));
    }

    // A new key is reserved by a plain insert (PostgreSQL's fast path); a key held by a record past its expiry is not
    // new to the insert, which answers nothing, and the full reservation replaces the record as a new one.
    [Fact]
    public async Task ReserveInTransaction_AnExpiredRecordHoldsTheKey_ReplacedAsANewRecordInTheSameTransaction()
    {
        var shortLived = new IdempotencyExecutor(Store, new IdempotencyEngineOptions { Lease = ShortLease, RenewLease = false, Expiration = ShortLease, ReservationLockTimeout = TimeSpan.FromSeconds(5) });
        var id = NewId();
        long oldToken;
        await using (var old = (await shortLived.BeginAsync(id, Fingerprint)).Execution!)
        {
            oldToken = old.FencingToken;
            Assert.Equal(CompletionOutcome.Completed, await old.CompleteAsync(Answer("old")));
        }

        await Task.Delay(ShortLease * 2);
        var decision = await Executor().BeginOneCommitAsync(id, Fingerprint);
        Assert.Equal(IdempotencyDecisionKind.Execute, decision.Kind); // expired: as if absent
        await using (var connection = await OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await decision.Execution!.ReserveInTransactionAsync(transaction);
            Assert.False(decision.Execution.IsTakeOver);
            Assert.True(decision.Execution.FencingToken > oldToken);
            await PayAsync(connection, transaction, id, "new");
            await decision.Execution.CompleteInTransactionAsync(transaction, Answer("new"));
            await transaction.CommitAsync();
        }

        var retry = await Executor().BeginOneCommitAsync(id, Fingerprint);
        Assert.Equal(IdempotencyDecisionKind.Replay, retry.Kind);
        Assert.Equal("new", System.Text.Encoding.UTF8.GetString(retry.Record!.Response!.Body.Span));
        Assert.Equal(1, retry.Record.Attempts);
        Assert.Equal(1, await CountPaymentsAsync(id));
    }

    [Fact]
    public async Task BeginOneCommit_OtherFingerprint_KeyReusedAndNothingChanged()
    {
        var executor = Executor();
        var id = NewId();
        var execution = (await executor.BeginOneCommitAsync(id, Fingerprint)).Execution!;
        await using (var connection = await OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await execution.ReserveInTransactionAsync(transaction);
            await execution.CompleteInTransactionAsync(transaction, Answer("first"));
            await transaction.CommitAsync();
        }

        var reused = await executor.BeginOneCommitAsync(id, new string('f', 64));

        Assert.Equal(IdempotencyDecisionKind.KeyReused, reused.Kind);
        Assert.Equal(IdempotencyRecordState.Completed, (await Store.GetAsync(id, CancellationToken.None))!.State);
    }

    [Fact]
    public async Task Release_ReservationRolledBackThenAnotherAttemptCompleted_DebugRolledBackNotLeaseLostAndTheAnswerKept()
    {
        // Issue 17, item 16: a client hung up, its transaction rolled back (reservation included), another attempt
        // reserved and completed the key, and only then did the first attempt's release run.
        var logs = new CapturingLogger();
        var executor = new IdempotencyExecutor(Store, new IdempotencyEngineOptions { RenewLease = false }, logger: logs);
        var id = NewId();
        var hungUp = (await executor.BeginOneCommitAsync(id, Fingerprint)).Execution!;
        await using (var connection = await OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await hungUp.ReserveInTransactionAsync(transaction);
            await transaction.RollbackAsync();
        }

        var other = (await executor.BeginOneCommitAsync(id, Fingerprint)).Execution!;
        await using (var connection = await OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await other.ReserveInTransactionAsync(transaction);
            await PayAsync(connection, transaction, id, "other");
            await other.CompleteInTransactionAsync(transaction, Answer("other"));
            await transaction.CommitAsync();
        }

        await hungUp.ReleaseAsync();

        Assert.DoesNotContain(logs.Entries, e => e.EventId is IdempotencyEventIds.LeaseLost or IdempotencyEventIds.ReleaseRefusedCompleted);
        var entry = Assert.Single(logs.Entries, e => e.EventId == IdempotencyEventIds.OneCommitReservationRolledBack);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Debug, entry.Level);
        var record = (await Store.GetAsync(id, CancellationToken.None))!;
        Assert.Equal(IdempotencyRecordState.Completed, record.State);
        Assert.Equal("other", System.Text.Encoding.UTF8.GetString(record.Response!.Body.Span));
        Assert.Equal(1, await CountPaymentsAsync(id));
    }

    [Fact]
    public async Task Release_ReservationRolledBackThenAnotherAttemptInProgress_TheOtherRecordKept()
    {
        // A client hung up and its transaction rolled back (reservation included); another attempt reserved the key and
        // is still running when the first attempt's fenced release arrives. The rolled-back token must never be handed
        // out again, or that release would delete the running attempt's record and let a third attempt execute too.
        var executor = Executor();
        var id = NewId();
        var hungUp = (await executor.BeginOneCommitAsync(id, Fingerprint)).Execution!;
        await using (var connection = await OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await hungUp.ReserveInTransactionAsync(transaction);
            await transaction.RollbackAsync();
        }

        await using var running = (await executor.BeginAsync(id, Fingerprint)).Execution!;
        Assert.NotEqual(hungUp.FencingToken, running.FencingToken);

        await hungUp.ReleaseAsync();

        var record = await Store.GetAsync(id, CancellationToken.None);
        Assert.NotNull(record);
        Assert.Equal(IdempotencyRecordState.InProgress, record.State);
        Assert.Equal(running.FencingToken, record.FencingToken);
        Assert.Equal(CompletionOutcome.Completed, await running.CompleteAsync(Answer("running")));
    }

    [Fact]
    public async Task CompleteInTransaction_OneCommitNotReservedYet_RefusedWithAClearError()
    {
        var execution = (await Executor().BeginOneCommitAsync(NewId(), Fingerprint)).Execution!;
        await using var connection = await OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => execution.CompleteInTransactionAsync(transaction, Answer("x")).AsTask());

        Assert.Contains("ReserveInTransactionAsync", error.Message, StringComparison.Ordinal);
    }

    private IdempotencyExecutor Executor() => new(Store, new IdempotencyEngineOptions { Lease = ShortLease, RenewLease = false, ReservationLockTimeout = TimeSpan.FromSeconds(5) });

    private sealed class CapturingLogger : Microsoft.Extensions.Logging.ILogger<IdempotencyExecutor>
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<(int EventId, Microsoft.Extensions.Logging.LogLevel Level, string Message)> _entries = new();

        public IReadOnlyList<(int EventId, Microsoft.Extensions.Logging.LogLevel Level, string Message)> Entries => [.. _entries];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => _entries.Enqueue((eventId.Id, logLevel, formatter(state, exception)));
    }

    private static IdempotencyRecordId NewId() => new("tenant-one-commit", "POST /one-commit", Guid.NewGuid().ToString());

    private static IdempotentResponse Answer(string text) => new(201, [new("Content-Type", "text/plain")], System.Text.Encoding.UTF8.GetBytes(text));

    private static Task PayAsync(DbConnection connection, DbTransaction transaction, IdempotencyRecordId id, string note)
        => TestSql.ExecuteAsync(connection, transaction, "INSERT INTO one_commit_payments (idem_key, note) VALUES (@k, @n)", ("@k", id.Key), ("@n", note));

    private async Task<long> CountPaymentsAsync(IdempotencyRecordId id)
    {
        await using var connection = await OpenConnectionAsync();
        return await TestSql.ScalarAsync(connection, "SELECT COUNT(*) FROM one_commit_payments WHERE idem_key = @k", ("@k", id.Key));
    }
}
