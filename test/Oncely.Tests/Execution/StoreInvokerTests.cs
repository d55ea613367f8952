using Microsoft.Extensions.Time.Testing;

namespace Oncely.Tests.Execution;

/// <summary>
/// <see cref="StoreInvoker"/>: every store call bounded by the store timeout on the engine's clock (row 13), the store
/// told to give up when it runs out, and a caller's cancellation never taken for a store failure.
/// </summary>
public class StoreInvokerTests
{
    private static readonly IdempotencyRecordId Id = new("tenant-1", "POST /payments", "key-1");
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    [Fact]
    public async Task CallAsync_StoreSlowerThanTimeout_UnavailableAndStoreToldToGiveUp()
    {
        var clock = new FakeTimeProvider();
        var store = new HangingStore();
        var invoker = new StoreInvoker(store, Timeout, clock, new IdempotencyInstrumentation(null, nameof(HangingStore)));

        var call = invoker.GetAsync(Id, CancellationToken.None).AsTask();
        await store.Entered.Task.WaitAsync(TimeSpan.FromSeconds(10));

        // The deadline is armed just after the store call goes asynchronous: move the clock until it has fired.
        for (var i = 0; i < 200 && !call.IsCompleted; i++)
        {
            clock.Advance(Timeout);
            await Task.WhenAny(call, Task.Delay(10));
        }

        var failure = await Assert.ThrowsAsync<IdempotencyStoreUnavailableException>(() => call.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.IsType<TimeoutException>(failure.InnerException);
        Assert.True(store.GiveUp.IsCancellationRequested);
    }

    [Fact]
    public async Task CallAsync_SynchronousStore_AnswersWithoutTheClock()
    {
        var clock = new FakeTimeProvider();
        var store = new InMemoryIdempotencyStore(clock);
        var invoker = new StoreInvoker(store, Timeout, clock, new IdempotencyInstrumentation(null, nameof(InMemoryIdempotencyStore)));

        var first = await invoker.GetAsync(Id, CancellationToken.None);
        var second = await invoker.GetAsync(Id, CancellationToken.None);

        Assert.Null(first);
        Assert.Null(second);
    }

    [Fact]
    public void IsStoreFailure_CallerCancelled_NotAFailure()
    {
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();

        Assert.False(StoreInvoker.IsStoreFailure(new OperationCanceledException(cancelled.Token), cancelled.Token));
        Assert.True(StoreInvoker.IsStoreFailure(new OperationCanceledException(), CancellationToken.None));
        Assert.True(StoreInvoker.IsStoreFailure(new TimeoutException(), cancelled.Token));
    }

    /// <summary>A store whose reads never answer until told to give up.</summary>
    private sealed class HangingStore : IIdempotencyStore
    {
        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public CancellationToken GiveUp { get; private set; }

        public async ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken)
        {
            GiveUp = cancellationToken;
            Entered.TrySetResult();
            await Task.Delay(System.Threading.Timeout.Infinite, cancellationToken);
            return null;
        }

        public ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<bool> TryReleaseAsync(IdempotencyRecordId id, long fencingToken, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<bool> TrySetRecoveryPointAsync(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<bool> TryRenewLeaseAsync(IdempotencyRecordId id, long fencingToken, TimeSpan lease, CancellationToken cancellationToken) => throw new NotSupportedException();
    }
}
