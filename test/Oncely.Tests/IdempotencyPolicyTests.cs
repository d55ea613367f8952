using Microsoft.Extensions.Time.Testing;

namespace Oncely.Tests;

/// <summary><see cref="IdempotencyExecutor.WithPolicy"/>: one kind of operation with its own lease, expiration and wait.</summary>
public class IdempotencyPolicyTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);
    private static readonly IdempotencyRecordId Message = new("tenant-1", "payouts-consumer", "message-7");

    private static IdempotentResponse Result(string text) => new(0, [], System.Text.Encoding.UTF8.GetBytes(text));

    [Fact]
    public async Task WithPolicy_ReservationRecoveryPointAndCompletion_UseThePolicysLeaseAndExpiration()
    {
        var clock = new FakeTimeProvider(Now);
        var store = new InMemoryIdempotencyStore(clock);
        var engine = new IdempotencyExecutor(store, new IdempotencyEngineOptions(), clock);
        var payouts = engine.WithPolicy(new IdempotencyPolicy { Lease = TimeSpan.FromMinutes(2), Expiration = TimeSpan.FromDays(7) });

        var outcome = await payouts.ExecuteAsync(Message, "fp", async (execution, ct) =>
        {
            var held = await store.GetAsync(Message, ct);
            Assert.Equal(Now + TimeSpan.FromMinutes(2), held!.LeaseExpiresAt);
            Assert.Equal(Now + TimeSpan.FromDays(7), held.ExpiresAt);
            Assert.Equal(TimeSpan.FromMinutes(2), execution.Lease);
            clock.Advance(TimeSpan.FromSeconds(10));
            await execution.SetRecoveryPointAsync("sent-to-bank", ct);
            Assert.Equal(Now + TimeSpan.FromSeconds(10) + TimeSpan.FromMinutes(2), (await store.GetAsync(Message, ct))!.LeaseExpiresAt);
            return Result("paid");
        });

        Assert.Equal(CompletionOutcome.Completed, outcome.Completion);
        Assert.Equal(Now + TimeSpan.FromSeconds(10) + TimeSpan.FromDays(7), (await store.GetAsync(Message, default))!.ExpiresAt);
        Assert.Same(store, payouts.Store);
        Assert.Equal(TimeSpan.FromSeconds(30), engine.Lease);
        Assert.Null(engine.Policy);
        Assert.NotNull(payouts.Policy);
    }

    [Fact]
    public async Task WithPolicy_UnsetSettings_AreTheEngines()
    {
        var clock = new FakeTimeProvider(Now);
        var store = new InMemoryIdempotencyStore(clock);
        var executor = new IdempotencyExecutor(store, new IdempotencyEngineOptions { Lease = TimeSpan.FromSeconds(40) }, clock)
            .WithPolicy(new IdempotencyPolicy { Expiration = TimeSpan.FromHours(2) });

        var decision = await executor.BeginAsync(Message, "fp");
        await using var execution = decision.Execution!;

        var held = await store.GetAsync(Message, default);
        Assert.Equal(Now + TimeSpan.FromSeconds(40), held!.LeaseExpiresAt);
        Assert.Equal(Now + TimeSpan.FromHours(2), held.ExpiresAt);
    }

    [Fact]
    public async Task WithPolicy_InProgressWait_ADuplicateWaitsAndReplays()
    {
        var store = new InMemoryIdempotencyStore();
        var engine = new IdempotencyExecutor(store, new IdempotencyEngineOptions());
        var waiting = engine.WithPolicy(new IdempotencyPolicy { InProgressWait = TimeSpan.FromSeconds(30) });
        var first = await engine.BeginAsync(Message, "fp");
        await using var execution = first.Execution!;

        var duplicate = waiting.BeginAsync(Message, "fp").AsTask();
        var refusedAtOnce = await engine.BeginAsync(Message, "fp");
        await execution.CompleteAsync(Result("done"));
        var answered = await duplicate;

        Assert.Equal(IdempotencyDecisionKind.InProgress, refusedAtOnce.Kind);
        Assert.Equal(IdempotencyDecisionKind.Replay, answered.Kind);
    }

    [Theory]
    [InlineData(0, null, null, "Lease must be positive")]
    [InlineData(60, 30, null, "Expiration (00:00:30) must not be shorter than Lease (00:01:00)")]
    [InlineData(6, null, 6, "LeaseRenewalInterval must be positive and shorter than Lease (00:00:06)")]
    public void WithPolicy_UnusableSettings_ThrowsSayingWhatToChange(int leaseSeconds, int? expirationSeconds, int? renewalSeconds, string message)
    {
        var executor = new IdempotencyExecutor(new InMemoryIdempotencyStore(), new IdempotencyEngineOptions());
        var policy = new IdempotencyPolicy
        {
            Lease = TimeSpan.FromSeconds(leaseSeconds),
            Expiration = expirationSeconds is { } e ? TimeSpan.FromSeconds(e) : null,
            LeaseRenewalInterval = renewalSeconds is { } r ? TimeSpan.FromSeconds(r) : null,
        };

        var error = Assert.Throws<ArgumentException>(() => executor.WithPolicy(policy));

        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.Contains(message, Assert.Single(policy.Validate(new IdempotencyEngineOptions())), StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_PolicyKeepingTheEnginesLease_InheritsItsRenewalInterval_OwnLeaseUsesAThird()
    {
        var engine = new IdempotencyEngineOptions { LeaseRenewalInterval = TimeSpan.FromSeconds(20) };

        Assert.Empty(new IdempotencyPolicy { Expiration = TimeSpan.FromHours(1) }.Validate(engine));
        Assert.Empty(new IdempotencyPolicy { Lease = TimeSpan.FromSeconds(9) }.Validate(engine));
        Assert.NotNull(new IdempotencyExecutor(new InMemoryIdempotencyStore(), engine).WithPolicy(new IdempotencyPolicy { Lease = TimeSpan.FromSeconds(9) }));
    }
}
