namespace Oncely;

/// <summary>What <see cref="LeaseRenewal"/> renews: one attempt's lease, one fenced store call at a time.</summary>
internal interface IRenewableLease
{
    /// <summary>
    /// Renews the lease once. Never throws: <see langword="false"/> when the store refused (the token is stale, or the
    /// record is no longer InProgress), so renewal stops; <see langword="true"/> to go on (also after a failure the
    /// holder logged, so the next interval tries again while the lease still runs).
    /// </summary>
    ValueTask<bool> RenewOnceAsync();
}

/// <summary>
/// Renews one attempt's lease in the background (decision-table row 21): a timer every renewal interval, at most one
/// store call in flight (a slow call is not overtaken by the next tick), stopped for good when the store refuses, when
/// renewal is signalled to stop, or when stopped and awaited, so no renewal ends after the completion or release that
/// stopped it. Most attempts end long before the first tick: the cost is the timer and this object.
/// </summary>
/// <remarks>The object is its own lock: it is private to one attempt, and saves the attempt a lock object of its own.</remarks>
internal sealed class LeaseRenewal
{
    private readonly IRenewableLease _lease;
    private ITimer? _timer;
    private bool _stopped;
    private Task? _inFlight;

    private LeaseRenewal(IRenewableLease lease) => _lease = lease;

    /// <summary><see langword="true"/> once renewal was asked to stop (or the store refused a renewal).</summary>
    public bool IsStopped => Volatile.Read(ref _stopped);

    /// <summary>Starts renewing <paramref name="lease"/> every <paramref name="interval"/> of <paramref name="clock"/>'s time until stopped.</summary>
    public static LeaseRenewal Start(IRenewableLease lease, TimeProvider clock, TimeSpan interval)
    {
        var renewal = new LeaseRenewal(lease);
        lock (renewal)
        {
            // The timer must not carry the request's ambient state (activity, HTTP context accessors) around with it.
            using (ExecutionContext.SuppressFlow())
            {
                renewal._timer = clock.CreateTimer(static state => ((LeaseRenewal)state!).OnDue(), renewal, interval, interval);
            }
        }

        return renewal;
    }

    /// <summary>Stops the timer without waiting for a renewal in flight (the attempt's transaction is about to write the completion).</summary>
    public void SignalStop()
    {
        lock (this)
        {
            StopTimer();
        }
    }

    /// <summary>Stops the timer and waits for a renewal in flight, so it cannot extend a lease that is about to be ended.</summary>
    public ValueTask StopAsync()
    {
        Task? inFlight;
        lock (this)
        {
            StopTimer();
            inFlight = _inFlight;
        }

        return inFlight is null || inFlight.IsCompleted ? ValueTask.CompletedTask : new ValueTask(inFlight);
    }

    private void OnDue()
    {
        lock (this)
        {
            if (_stopped || _inFlight is { IsCompleted: false })
            {
                return;
            }

            _inFlight = RenewAsync();
        }
    }

    private async Task RenewAsync()
    {
        // The store call itself is not cancelled by a stop: stopping waits for it instead.
        if (!await _lease.RenewOnceAsync().ConfigureAwait(false))
        {
            SignalStop();
        }
    }

    private void StopTimer()
    {
        Volatile.Write(ref _stopped, true);
        _timer?.Dispose();
        _timer = null;
    }
}
