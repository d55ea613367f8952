using Microsoft.Extensions.Time.Testing;

namespace Oncely.Tests.Execution;

/// <summary>
/// <see cref="LeaseRenewal"/> on its own, with a fake clock and a lease whose renewals the test answers by hand
/// (decision-table row 21): one renewal in flight at a time, a refusal stops it for good, and a stop waits for the
/// renewal in flight so none ends after the completion or release that stopped it.
/// </summary>
public class LeaseRenewalTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Start_IntervalPasses_RenewsOncePerInterval()
    {
        var clock = new FakeTimeProvider();
        var lease = new ScriptedLease { AnswerAtOnce = true };
        var renewal = LeaseRenewal.Start(lease, clock, Interval);

        clock.Advance(Interval - TimeSpan.FromTicks(1));
        Assert.Equal(0, lease.Calls);
        for (var i = 1; i <= 3; i++)
        {
            clock.Advance(i == 1 ? TimeSpan.FromTicks(1) : Interval);
            Assert.Equal(i, lease.Calls);
        }

        await renewal.StopAsync();
        Assert.Equal(3, lease.Calls);
    }

    [Fact]
    public async Task OnDue_RenewalStillInFlight_NextTickSkipped()
    {
        var clock = new FakeTimeProvider();
        var lease = new ScriptedLease();
        var renewal = LeaseRenewal.Start(lease, clock, Interval);
        clock.Advance(Interval);
        await WaitUntilAsync(() => lease.Calls == 1);

        // The store is slow: two more ticks pass while the first renewal is still out.
        clock.Advance(Interval);
        clock.Advance(Interval);
        await Task.Delay(50);
        Assert.Equal(1, lease.Calls);

        // Once it is back, a later tick renews again.
        lease.Answer(true);
        for (var i = 0; i < 500 && lease.Calls == 1; i++)
        {
            await Task.Delay(10);
            clock.Advance(Interval);
        }

        Assert.Equal(2, lease.Calls);
        lease.Answer(true);
        await renewal.StopAsync();
    }

    [Fact]
    public async Task RenewOnce_StoreRefuses_StopsForGood()
    {
        var clock = new FakeTimeProvider();
        var lease = new ScriptedLease();
        var renewal = LeaseRenewal.Start(lease, clock, Interval);
        clock.Advance(Interval);
        await WaitUntilAsync(() => lease.Calls == 1);

        lease.Answer(false);
        await WaitUntilAsync(() => renewal.IsStopped);
        clock.Advance(Interval * 5);
        await Task.Delay(50);

        Assert.Equal(1, lease.Calls);
    }

    [Fact]
    public async Task StopAsync_RenewalInFlight_CompletesOnlyAfterIt()
    {
        var clock = new FakeTimeProvider();
        var lease = new ScriptedLease();
        var renewal = LeaseRenewal.Start(lease, clock, Interval);
        clock.Advance(Interval);
        await WaitUntilAsync(() => lease.Calls == 1);

        var stopping = renewal.StopAsync().AsTask();
        await Task.Delay(50);
        Assert.False(stopping.IsCompleted);
        Assert.True(renewal.IsStopped);

        lease.Answer(true);
        await stopping.WaitAsync(TimeSpan.FromSeconds(10));
        clock.Advance(Interval * 3);
        await Task.Delay(50);
        Assert.Equal(1, lease.Calls);
    }

    [Fact]
    public async Task SignalStop_NothingInFlight_NoRenewalAfterwards()
    {
        var clock = new FakeTimeProvider();
        var lease = new ScriptedLease();
        var renewal = LeaseRenewal.Start(lease, clock, Interval);

        renewal.SignalStop();
        clock.Advance(Interval * 3);
        await Task.Delay(50);

        Assert.True(renewal.IsStopped);
        Assert.Equal(0, lease.Calls);
        Assert.True(renewal.StopAsync().IsCompleted);
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

    /// <summary>A lease whose every renewal waits until the test answers it.</summary>
    private sealed class ScriptedLease : IRenewableLease
    {
        private readonly Lock _gate = new();
        private TaskCompletionSource<bool>? _pending;
        private int _calls;

        public int Calls => Volatile.Read(ref _calls);

        /// <summary>Grant every renewal synchronously instead of waiting for <see cref="Answer"/>.</summary>
        public bool AnswerAtOnce { get; init; }

        public ValueTask<bool> RenewOnceAsync()
        {
            if (AnswerAtOnce)
            {
                Interlocked.Increment(ref _calls);
                return ValueTask.FromResult(true);
            }

            var pending = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_gate)
            {
                _pending = pending;
            }

            Interlocked.Increment(ref _calls);
            return new ValueTask<bool>(pending.Task);
        }

        public void Answer(bool renewed)
        {
            TaskCompletionSource<bool>? pending;
            lock (_gate)
            {
                pending = _pending;
                _pending = null;
            }

            Assert.NotNull(pending);
            pending.SetResult(renewed);
        }
    }
}
