using Microsoft.Extensions.Time.Testing;

namespace Oncely.Tests;

/// <summary>
/// Lease renewal while the operation runs (decision-table row 21), on the in-memory store with a fake clock: the
/// engine renews the lease (fenced) until the attempt completes, is released, is disposed or is refused by the store.
/// </summary>
public class IdempotencyExecutionTests
{
    private static readonly IdempotencyRecordId Message = new("tenant-1", "orders-consumer", "message-42");
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(10);

    private static IdempotentResponse Result(string text) => new(0, [], System.Text.Encoding.UTF8.GetBytes(text));

    [Fact]
    public async Task BeginAsync_OperationOutlivesLease_LeaseRenewedSoConcurrentAttemptGetsInProgress()
    {
        var clock = new FakeTimeProvider();
        var store = new RenewalCountingStore(new InMemoryIdempotencyStore(clock));
        var executor = new IdempotencyExecutor(store, new IdempotencyEngineOptions { Lease = Lease }, clock);
        await using var execution = (await executor.BeginAsync(Message, "fp")).Execution!;
        var firstLeaseEnd = (await store.GetAsync(Message, default))!.LeaseExpiresAt;

        // Twice the lease passes while the operation still runs; every third of a lease the engine renews it.
        for (var i = 1; i <= 6; i++)
        {
            clock.Advance(Step);
            await WaitUntilAsync(() => store.Renewals >= i);
        }

        Assert.True(clock.GetUtcNow() > firstLeaseEnd);
        var record = await store.GetAsync(Message, default);
        Assert.Equal(clock.GetUtcNow() + Lease, record!.LeaseExpiresAt);
        var concurrent = await executor.BeginAsync(Message, "fp");
        Assert.Equal(IdempotencyDecisionKind.InProgress, concurrent.Kind);
        Assert.Null(concurrent.Execution);

        Assert.Equal(CompletionOutcome.Completed, await execution.CompleteAsync(Result("done")));
        var replay = await executor.BeginAsync(Message, "fp");
        Assert.Equal(IdempotencyDecisionKind.Replay, replay.Kind);
    }

    [Fact]
    public async Task CompleteAsync_AfterCompletion_RenewalStops()
    {
        var clock = new FakeTimeProvider();
        var store = new RenewalCountingStore(new InMemoryIdempotencyStore(clock));
        var executor = new IdempotencyExecutor(store, new IdempotencyEngineOptions { Lease = Lease }, clock);
        var execution = (await executor.BeginAsync(Message, "fp")).Execution!;
        clock.Advance(Step);
        await WaitUntilAsync(() => store.Renewals == 1);

        await execution.CompleteAsync(Result("done"));
        clock.Advance(Lease * 4);
        await Task.Delay(50);

        Assert.Equal(1, store.Renewals);
        Assert.Equal(IdempotencyRecordState.Completed, (await store.GetAsync(Message, default))?.State);
    }

    [Fact]
    public async Task ExecuteAsync_SlowOperation_RenewedWhileRunningAndStoppedAfter()
    {
        var clock = new FakeTimeProvider();
        var store = new RenewalCountingStore(new InMemoryIdempotencyStore(clock));
        var executor = new IdempotencyExecutor(store, new IdempotencyEngineOptions { Lease = Lease }, clock);
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var running = executor.ExecuteAsync(Message, "fp", async (_, _) =>
        {
            entered.SetResult();
            await release.Task;
            return Result("done");
        }).AsTask();
        await entered.Task;

        for (var i = 1; i <= 4; i++)
        {
            clock.Advance(Step);
            await WaitUntilAsync(() => store.Renewals >= i);
        }

        Assert.Equal(IdempotencyDecisionKind.InProgress, (await executor.BeginAsync(Message, "fp")).Kind);
        release.SetResult();
        var outcome = await running;
        Assert.Equal(CompletionOutcome.Completed, outcome.Completion);
        var renewals = store.Renewals;
        clock.Advance(Lease * 4);
        await Task.Delay(50);
        Assert.Equal(renewals, store.Renewals);
    }

    [Fact]
    public async Task DisposeAsync_WithoutCompletion_RenewalStopsAndLeaseRunsOut()
    {
        var clock = new FakeTimeProvider();
        var store = new RenewalCountingStore(new InMemoryIdempotencyStore(clock));
        var executor = new IdempotencyExecutor(store, new IdempotencyEngineOptions { Lease = Lease }, clock);
        var abandoned = (await executor.BeginAsync(Message, "fp")).Execution!;

        await abandoned.DisposeAsync();
        clock.Advance(Lease + Step);
        await Task.Delay(50);

        Assert.Equal(0, store.Renewals);
        var takeOver = await executor.BeginAsync(Message, "fp");
        Assert.Equal(IdempotencyDecisionKind.Execute, takeOver.Kind);
        Assert.True(takeOver.Execution!.IsTakeOver);
        await takeOver.Execution.DisposeAsync();
    }

    [Fact]
    public async Task Renewal_StoreRefusesStaleToken_StopsAndLogsNothingFurther()
    {
        var clock = new FakeTimeProvider();
        var inner = new InMemoryIdempotencyStore(clock);
        var store = new RenewalCountingStore(inner);
        var executor = new IdempotencyExecutor(store, new IdempotencyEngineOptions { Lease = Lease }, clock);
        await using var execution = (await executor.BeginAsync(Message, "fp")).Execution!;

        // Someone else holds the record now (as after a take-over): the renewal is refused and renewal stops.
        Assert.True(await inner.TryReleaseAsync(Message, execution.FencingToken, default));
        var other = await inner.TryReserveAsync(Message, "fp", Lease, TimeSpan.FromHours(24), default);
        clock.Advance(Step);
        await WaitUntilAsync(() => store.Refusals == 1);
        clock.Advance(Step * 6);
        await Task.Delay(50);

        Assert.Equal(1, store.Refusals);
        Assert.Equal(0, store.Renewals);
        Assert.Equal(other.Record.FencingToken, (await inner.GetAsync(Message, default))!.FencingToken);
        Assert.Equal(CompletionOutcome.LeaseLost, await execution.CompleteAsync(Result("late")));
    }

    [Fact]
    public async Task BeginAsync_RenewLeaseOff_LeaseRunsOutAndRetryTakesOver()
    {
        var clock = new FakeTimeProvider();
        var store = new RenewalCountingStore(new InMemoryIdempotencyStore(clock));
        var executor = new IdempotencyExecutor(store, new IdempotencyEngineOptions { Lease = Lease, RenewLease = false }, clock);
        await using var first = (await executor.BeginAsync(Message, "fp")).Execution!;

        clock.Advance(Lease + Step);
        var retry = await executor.BeginAsync(Message, "fp");

        Assert.Equal(0, store.Renewals);
        Assert.True(retry.Execution!.IsTakeOver);
        await retry.Execution.DisposeAsync();
    }

    [Fact]
    public async Task BeginAsync_RenewalIntervalSet_RenewsAtThatInterval()
    {
        var clock = new FakeTimeProvider();
        var store = new RenewalCountingStore(new InMemoryIdempotencyStore(clock));
        var options = new IdempotencyEngineOptions { Lease = Lease, LeaseRenewalInterval = TimeSpan.FromSeconds(2) };
        var executor = new IdempotencyExecutor(store, options, clock);
        await using var execution = (await executor.BeginAsync(Message, "fp")).Execution!;

        for (var i = 1; i <= 3; i++)
        {
            clock.Advance(TimeSpan.FromSeconds(2));
            await WaitUntilAsync(() => store.Renewals >= i);
        }

        Assert.Equal(3, store.Renewals);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(30)]
    [InlineData(45)]
    public void Validate_RenewalIntervalNotShorterThanLeaseOrNotPositive_SaysWhatToChange(int seconds)
    {
        var options = new IdempotencyEngineOptions { Lease = Lease, LeaseRenewalInterval = TimeSpan.FromSeconds(seconds) };

        var problem = Assert.Single(options.Validate());

        Assert.Contains("LeaseRenewalInterval must be positive and shorter than Lease", problem);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "The condition did not become true within 10 seconds.");
            await Task.Delay(5);
        }
    }

    /// <summary>Forwards to a real store and counts renewals it granted and refused.</summary>
    private sealed class RenewalCountingStore(IIdempotencyStore inner) : IIdempotencyStore
    {
        private int _renewals;
        private int _refusals;

        public int Renewals => Volatile.Read(ref _renewals);

        public int Refusals => Volatile.Read(ref _refusals);

        public ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
            => inner.TryReserveAsync(id, fingerprint, lease, expiration, cancellationToken);

        public ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
            => inner.TryCompleteAsync(id, fencingToken, response, expiration, cancellationToken);

        public ValueTask<bool> TryReleaseAsync(IdempotencyRecordId id, long fencingToken, CancellationToken cancellationToken)
            => inner.TryReleaseAsync(id, fencingToken, cancellationToken);

        public ValueTask<bool> TrySetRecoveryPointAsync(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
            => inner.TrySetRecoveryPointAsync(id, fencingToken, recoveryPoint, lease, cancellationToken);

        public async ValueTask<bool> TryRenewLeaseAsync(IdempotencyRecordId id, long fencingToken, TimeSpan lease, CancellationToken cancellationToken)
        {
            var renewed = await inner.TryRenewLeaseAsync(id, fencingToken, lease, cancellationToken);
            Interlocked.Increment(ref renewed ? ref _renewals : ref _refusals);
            return renewed;
        }

        public ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken)
            => inner.GetAsync(id, cancellationToken);
    }
}
