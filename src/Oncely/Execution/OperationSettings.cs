namespace Oncely;

/// <summary>The per-operation settings an execution runs with: the engine's, with a policy's overrides applied.</summary>
internal readonly record struct OperationSettings(TimeSpan Lease, TimeSpan Expiration, TimeSpan RenewalInterval, TimeSpan InProgressWait)
{
    public static OperationSettings From(IdempotencyEngineOptions options)
        => new(options.Lease, options.Expiration, options.EffectiveLeaseRenewalInterval, options.InProgressWait);

    /// <exception cref="ArgumentException">The policy yields unusable settings; the message says what to change.</exception>
    public static OperationSettings From(IdempotencyEngineOptions options, IdempotencyPolicy policy)
    {
        var lease = policy.Lease ?? options.Lease;
        var expiration = policy.Expiration ?? options.Expiration;
        var renewal = policy.RenewalInterval(options) ?? lease / 3;
        var wait = policy.InProgressWait ?? options.InProgressWait;
        if (lease <= TimeSpan.Zero || expiration < lease || renewal <= TimeSpan.Zero || renewal >= lease || wait < TimeSpan.Zero)
        {
            throw new ArgumentException("Oncely: the idempotency policy is unusable: " + string.Join(" ", policy.Validate(options)), nameof(policy));
        }

        return new OperationSettings(lease, expiration, renewal, wait);
    }
}
