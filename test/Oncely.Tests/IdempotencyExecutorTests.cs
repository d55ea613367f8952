using Microsoft.Extensions.Time.Testing;

namespace Oncely.Tests;

public class IdempotencyExecutorTests
{
    private static readonly IdempotencyRecordId Message = new("tenant-1", "orders-consumer", "message-42");

    private static IdempotentResponse Result(string text) => new(0, [], System.Text.Encoding.UTF8.GetBytes(text));

    [Fact]
    public async Task ExecuteAsync_RedeliveredMessage_RunsOnceAndReturnsStoredResult()
    {
        var executor = new IdempotencyExecutor(new InMemoryIdempotencyStore(), new IdempotencyEngineOptions());
        var runs = 0;
        ValueTask<IdempotentResponse> Handle(IdempotencyExecution e, CancellationToken ct)
        {
            runs++;
            return ValueTask.FromResult(Result($"order created #{runs}"));
        }

        var first = await executor.ExecuteAsync(Message, "fp", Handle);
        var redelivery = await executor.ExecuteAsync(Message, "fp", Handle);

        Assert.Equal(IdempotencyDecisionKind.Execute, first.Kind);
        Assert.Equal(CompletionOutcome.Completed, first.Completion);
        Assert.Equal(IdempotencyDecisionKind.Replay, redelivery.Kind);
        Assert.Equal("order created #1", System.Text.Encoding.UTF8.GetString(redelivery.Response!.Body.Span));
        Assert.Equal(1, runs);
    }

    [Fact]
    public async Task ExecuteAsync_HandlerThrows_ReleasedSoRedeliveryRunsAgain()
    {
        var store = new InMemoryIdempotencyStore();
        var executor = new IdempotencyExecutor(store, new IdempotencyEngineOptions());
        await Assert.ThrowsAsync<InvalidOperationException>(async () =>
            await executor.ExecuteAsync(Message, "fp", (_, _) => throw new InvalidOperationException("transient")));
        Assert.Null(await store.GetAsync(Message, default));

        var retry = await executor.ExecuteAsync(Message, "fp", (_, _) => ValueTask.FromResult(Result("ok")));
        Assert.Equal(IdempotencyDecisionKind.Execute, retry.Kind);
    }

    [Fact]
    public async Task ExecuteAsync_SameMessageIdOtherPayload_KeyReusedAndNotRun()
    {
        var executor = new IdempotencyExecutor(new InMemoryIdempotencyStore(), new IdempotencyEngineOptions());
        await executor.ExecuteAsync(Message, "fp-a", (_, _) => ValueTask.FromResult(Result("a")));
        var ran = false;
        var other = await executor.ExecuteAsync(Message, "fp-b", (_, _) =>
        {
            ran = true;
            return ValueTask.FromResult(Result("b"));
        });
        Assert.Equal(IdempotencyDecisionKind.KeyReused, other.Kind);
        Assert.False(ran);
    }

    [Fact]
    public async Task BeginAsync_StoreThrows_StoreUnavailableAndNothingRuns()
    {
        var executor = new IdempotencyExecutor(new ThrowingStore(), new IdempotencyEngineOptions());
        var ran = false;
        var outcome = await executor.ExecuteAsync(Message, "fp", (_, _) =>
        {
            ran = true;
            return ValueTask.FromResult(Result("x"));
        });
        Assert.Equal(IdempotencyDecisionKind.StoreUnavailable, outcome.Kind);
        Assert.False(ran);
    }

    [Fact]
    public async Task BeginAsync_InProgressWithWait_ReplaysOnceTheFirstCompletes()
    {
        var store = new InMemoryIdempotencyStore();
        var options = new IdempotencyEngineOptions { InProgressWait = TimeSpan.FromSeconds(5), InProgressPollInterval = TimeSpan.FromMilliseconds(10) };
        var executor = new IdempotencyExecutor(store, options);
        var first = await executor.BeginAsync(Message, "fp");
        var waiting = executor.BeginAsync(Message, "fp").AsTask();
        await Task.Delay(50);
        Assert.False(waiting.IsCompleted);
        await first.Execution!.CompleteAsync(Result("done"));
        var second = await waiting;
        Assert.Equal(IdempotencyDecisionKind.Replay, second.Kind);
    }

    [Fact]
    public async Task DeriveKey_SameOperationAcrossTakeOver_SameDownstreamKey_OtherPurposeOrTenantDiffers()
    {
        var clock = new FakeTimeProvider();
        var executor = new IdempotencyExecutor(new InMemoryIdempotencyStore(clock), new IdempotencyEngineOptions { RenewLease = false }, clock);
        var first = (await executor.BeginAsync(Message, "fp")).Execution!;
        clock.Advance(TimeSpan.FromMinutes(1));
        var takeOver = (await executor.BeginAsync(Message, "fp")).Execution!;

        Assert.True(takeOver.IsTakeOver);
        Assert.NotEqual(first.FencingToken, takeOver.FencingToken);
        Assert.Equal(first.DeriveKey("bank/transfer"), takeOver.DeriveKey("bank/transfer"));
        Assert.NotEqual(first.DeriveKey("bank/transfer"), first.DeriveKey("card/authorise"));
        Assert.NotEqual(first.DeriveKey("bank/transfer"), IdempotencyExecution.DeriveKey(Message with { Tenant = "tenant-2" }, "fp", "bank/transfer"));
        Assert.True(Guid.TryParse(first.DeriveKey("bank/transfer"), out _));
    }

    [Fact]
    public async Task DeriveKey_SameKeyReusedAfterReleaseWithOtherPayload_DerivesOtherDownstreamKey()
    {
        // Regression (issue 9.6): after a release the client key is free again; a different payload under it is a
        // different operation and must not hand the bank the key of the first one.
        var executor = new IdempotencyExecutor(new InMemoryIdempotencyStore(), new IdempotencyEngineOptions());
        var first = (await executor.BeginAsync(Message, "fingerprint-of-100")).Execution!;
        var firstKey = first.DeriveKey("bank/transfer");
        await first.ReleaseAsync();

        var second = (await executor.BeginAsync(Message, "fingerprint-of-999")).Execution!;

        Assert.False(second.IsTakeOver);
        Assert.NotEqual(firstKey, second.DeriveKey("bank/transfer"));
    }

    [Fact]
    public async Task SetRecoveryPointAsync_AfterTakeOver_StaleExecutionThrowsLeaseLost()
    {
        var clock = new FakeTimeProvider();
        var executor = new IdempotencyExecutor(new InMemoryIdempotencyStore(clock), new IdempotencyEngineOptions { RenewLease = false }, clock);
        var stale = (await executor.BeginAsync(Message, "fp")).Execution!;
        clock.Advance(TimeSpan.FromMinutes(1));
        _ = await executor.BeginAsync(Message, "fp");
        await Assert.ThrowsAsync<IdempotencyLeaseLostException>(async () => await stale.SetRecoveryPointAsync("phase-1"));
        Assert.Equal(CompletionOutcome.LeaseLost, await stale.CompleteAsync(Result("late")));
    }

    [Fact]
    public async Task CompleteInTransactionAsync_StoreWithoutCapability_ExplainsWhatToUse()
    {
        var executor = new IdempotencyExecutor(new InMemoryIdempotencyStore(), new IdempotencyEngineOptions());
        var execution = (await executor.BeginAsync(Message, "fp")).Execution!;
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=:memory:");
        await connection.OpenAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        var error = await Assert.ThrowsAsync<InvalidOperationException>(async () => await execution.CompleteInTransactionAsync(transaction, Result("x")));
        Assert.Contains("UseSqlite with a SqliteTransaction", error.Message);
        Assert.Contains("Microsoft.Data.Sqlite.SqliteTransaction", error.Message);
    }

    [Fact]
    public void Constructor_InvalidOptions_ThrowsWithWhatToChange()
    {
        var error = Assert.Throws<ArgumentException>(() => new IdempotencyExecutor(new InMemoryIdempotencyStore(), new IdempotencyEngineOptions { Expiration = TimeSpan.FromSeconds(1) }));
        Assert.Contains("must not be shorter than Lease", error.Message);
    }

    private sealed class ThrowingStore : IIdempotencyStore
    {
        public ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
            => throw new TimeoutException("socket timeout");

        public ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken) => throw new TimeoutException();

        public ValueTask<bool> TryReleaseAsync(IdempotencyRecordId id, long fencingToken, CancellationToken cancellationToken) => throw new TimeoutException();

        public ValueTask<bool> TrySetRecoveryPointAsync(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken) => throw new TimeoutException();

        public ValueTask<bool> TryRenewLeaseAsync(IdempotencyRecordId id, long fencingToken, TimeSpan lease, CancellationToken cancellationToken) => throw new TimeoutException();

        public ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken) => throw new TimeoutException();
    }
}
