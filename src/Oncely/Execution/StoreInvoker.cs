using System.Runtime.CompilerServices;

namespace Oncely;

/// <summary>
/// Every call the engine makes to the store goes through here: bounded by <see cref="IdempotencyEngineOptions.StoreTimeout"/>
/// (running out of time counts as the store being unavailable), traced and timed while something listens, and told to give
/// up through a cancellation source of its own. Also says which exceptions count as the store failing. One per executor,
/// shared by its policies and by every attempt; holds no per-request state.
/// </summary>
internal sealed class StoreInvoker(IIdempotencyStore store, TimeSpan timeout, TimeProvider clock, IdempotencyInstrumentation instrumentation)
{
    // The source that tells the store to give up, reused per thread when the call had no caller token (the HTTP path).
    [ThreadStatic]
    private static CancellationTokenSource? t_spareSource;

    /// <summary>The store behind the calls.</summary>
    public IIdempotencyStore Store { get; } = store;

    /// <summary>The engine's clock: store deadlines, lease renewal, waits.</summary>
    public TimeProvider Clock { get; } = clock;

    /// <summary>The spans and metrics store calls (and the attempts) are recorded on.</summary>
    public IdempotencyInstrumentation Instrumentation { get; } = instrumentation;

    /// <summary>
    /// <see langword="true"/> when <paramref name="exception"/>, thrown by a store call, means the store failed (and the
    /// answer is fail-closed) rather than the caller cancelling: a cancellation counts only when <paramref name="cancellationToken"/> asked for it.
    /// </summary>
    public static bool IsStoreFailure(Exception exception, CancellationToken cancellationToken)
        => exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested;

    /// <summary>
    /// Calls the store, bounded by the store timeout, traced and timed while something listens (and at the cost of two
    /// field reads while nothing does).
    /// </summary>
    /// <exception cref="IdempotencyStoreUnavailableException">The store did not answer in time.</exception>
    public ValueTask<TResult> CallAsync<TState, TResult>(
        StoreCall name,
        string operation,
        Func<IIdempotencyStore, TState, CancellationToken, ValueTask<TResult>> call,
        TState state,
        CancellationToken cancellationToken,
        Func<TResult, string?>? describe = null)
        => Instrumentation.IsObservingStore
            ? Instrumentation.ObserveStoreCallAsync(
                name,
                operation,
                static (s, ct) => s.invoker.CallWithDeadlineAsync(s.call, s.state, ct),
                (invoker: this, call, state),
                describe,
                cancellationToken)
            : CallWithDeadlineAsync(call, state, cancellationToken);

    /// <summary>Reads a record (<see cref="IIdempotencyStore.GetAsync"/>) as <see cref="CallAsync"/> does.</summary>
    public ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken)
        => CallAsync(StoreCall.Get, id.Operation, static (store, i, ct) => store.GetAsync(i, ct), id, cancellationToken);

    /// <summary>
    /// A store call the engine does not bound itself (inside the operation's transaction, or the key-reuse audit),
    /// traced and timed the same way. Not bounded by <see cref="IdempotencyEngineOptions.StoreTimeout"/>.
    /// </summary>
    public ValueTask<TResult> ObserveAsync<TState, TResult>(
        StoreCall name,
        string operation,
        Func<TState, CancellationToken, ValueTask<TResult>> call,
        TState state,
        CancellationToken cancellationToken,
        Func<TResult, string?>? describe = null)
        => Instrumentation.IsObservingStore
            ? Instrumentation.ObserveStoreCallAsync(name, operation, call, state, describe, cancellationToken)
            : call(state, cancellationToken);

    // The timer is armed only when the call goes asynchronous: synchronous stores (in-memory) pay for no timer at all.
    // Pooled state machine: every caller awaits the call once, and an asynchronous store's call would otherwise box one.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<TResult> CallWithDeadlineAsync<TState, TResult>(
        Func<IIdempotencyStore, TState, CancellationToken, ValueTask<TResult>> call,
        TState state,
        CancellationToken cancellationToken)
    {
        // Without a caller token, the source comes from a small per-thread spare once it is back uncancelled, so a store
        // call allocates none.
        var linked = cancellationToken.CanBeCanceled;
        var abandon = linked ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken) : TakeSpareSource();
        try
        {
            var pending = call(Store, state, abandon.Token);
            if (pending.IsCompleted)
            {
                return await pending.ConfigureAwait(false);
            }

            try
            {
                return await pending.AsTask().WaitAsync(timeout, Clock, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException ex)
            {
                // Tell the store to give up too, so its connection is not held past our answer.
                await abandon.CancelAsync().ConfigureAwait(false);
                throw new IdempotencyStoreUnavailableException($"The idempotency store did not answer within {timeout}.", ex);
            }
        }
        finally
        {
            if (!linked && abandon.TryReset())
            {
                t_spareSource = abandon;
            }
            else
            {
                abandon.Dispose();
            }
        }
    }

    private static CancellationTokenSource TakeSpareSource()
    {
        var spare = t_spareSource;
        if (spare is null)
        {
            return new CancellationTokenSource();
        }

        t_spareSource = null;
        return spare;
    }
}
