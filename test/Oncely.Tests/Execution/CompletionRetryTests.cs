using Oncely.Testing;

namespace Oncely.Tests.Execution;

/// <summary>
/// The completion's first attempt goes to the store directly, and only a failure enters the retry pipeline (issue 20):
/// the number of attempts and the rule for what is retried (row 17) stay those configured.
/// </summary>
public class CompletionRetryTests
{
    private static readonly IdempotentResponse Answer = new(201, [new("Location", "/payments/1")], "{\"id\":1}"u8.ToArray());

    [Fact]
    public async Task Complete_FirstWriteFailsThenSucceeds_CompletedOnTheSecondAttempt()
    {
        var store = new FailingCompletions(new InMemoryIdempotencyStore(), failures: 1, () => new IOException("connection reset"));
        var executor = new IdempotencyExecutor(store, new IdempotencyEngineOptions { CompletionRetryDelay = TimeSpan.Zero, RenewLease = false });
        var id = new IdempotencyRecordId("t", "op", "k");

        var result = await executor.ExecuteAsync(id, "fp", (_, _) => ValueTask.FromResult(Answer));

        Assert.Equal(CompletionOutcome.Completed, result.Completion);
        Assert.Equal(2, store.CompleteAttempts);
        var record = await store.GetAsync(id, default);
        Assert.Equal(IdempotencyRecordState.Completed, record!.State);
        Assert.Equal(Answer.Body.ToArray(), record.Response!.Body.ToArray());
    }

    [Fact]
    public async Task Complete_EveryWriteFails_OneAttemptPlusTheConfiguredRetries()
    {
        var store = new FailingCompletions(new InMemoryIdempotencyStore(), failures: int.MaxValue, () => new TimeoutException("slow"));
        var executor = new IdempotencyExecutor(store, new IdempotencyEngineOptions { CompletionRetries = 2, CompletionRetryDelay = TimeSpan.Zero, RenewLease = false });

        var result = await executor.ExecuteAsync(new IdempotencyRecordId("t", "op", "k"), "fp", (_, _) => ValueTask.FromResult(Answer));

        Assert.Equal(CompletionOutcome.StoreFailed, result.Completion);
        Assert.Equal(3, store.CompleteAttempts);
    }

    [Fact]
    public async Task Complete_CancellationFromTheStore_NotRetried()
    {
        // The pipeline's rule retries every failure but a cancellation (a timeout excepted): unchanged by the direct first attempt.
        var store = new FailingCompletions(new InMemoryIdempotencyStore(), failures: int.MaxValue, () => new OperationCanceledException());
        var executor = new IdempotencyExecutor(store, new IdempotencyEngineOptions { CompletionRetryDelay = TimeSpan.Zero, RenewLease = false });

        var result = await executor.ExecuteAsync(new IdempotencyRecordId("t", "op", "k"), "fp", (_, _) => ValueTask.FromResult(Answer));

        Assert.Equal(CompletionOutcome.StoreFailed, result.Completion);
        Assert.Equal(1, store.CompleteAttempts);
    }

    [Fact]
    public async Task Complete_RetriesOff_FailureNotRetried()
    {
        var store = new FailingCompletions(new InMemoryIdempotencyStore(), failures: 1, () => new IOException("connection reset"));
        var executor = new IdempotencyExecutor(store, new IdempotencyEngineOptions { CompletionRetries = 0, RenewLease = false });

        var result = await executor.ExecuteAsync(new IdempotencyRecordId("t", "op", "k"), "fp", (_, _) => ValueTask.FromResult(Answer));

        Assert.Equal(CompletionOutcome.StoreFailed, result.Completion);
        Assert.Equal(1, store.CompleteAttempts);
    }

    private sealed class FailingCompletions(IIdempotencyStore inner, int failures, Func<Exception> failure) : DelegatingIdempotencyStore(inner)
    {
        private int _attempts;

        public int CompleteAttempts => Volatile.Read(ref _attempts);

        public override ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
            => Interlocked.Increment(ref _attempts) <= failures
                ? ValueTask.FromException<bool>(failure())
                : base.TryCompleteAsync(id, fencingToken, response, expiration, cancellationToken);
    }
}
