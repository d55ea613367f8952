namespace Oncely;

/// <summary>
/// Settings one kind of operation uses instead of the engine's (<see cref="IdempotencyEngineOptions"/>): its own lease,
/// expiration and in-progress wait. Every setting left <see langword="null"/> (the default) is the engine's. Bind it to
/// an executor with <see cref="IdempotencyExecutor.WithPolicy"/>; in ASP.NET Core, named policies
/// (<c>IdempotencyOptions.AddPolicy</c>) derive from it.
/// </summary>
public class IdempotencyPolicy
{
    /// <summary>
    /// How long this operation's InProgress reservation is held from its last renewal before a retry may take it over.
    /// Default: <see langword="null"/>, the engine's <see cref="IdempotencyEngineOptions.Lease"/> (30 seconds).
    /// </summary>
    public TimeSpan? Lease { get; set; }

    /// <summary>
    /// How often this operation's lease is renewed while it runs; positive and shorter than the lease in force.
    /// Default: <see langword="null"/>: the engine's <see cref="IdempotencyEngineOptions.LeaseRenewalInterval"/> when
    /// this policy keeps the engine's lease, and a third of this policy's <see cref="Lease"/> when it sets its own.
    /// </summary>
    public TimeSpan? LeaseRenewalInterval { get; set; }

    /// <summary>
    /// How long this operation's records live (TTL) before they count as absent and are purged; at least the lease in
    /// force. Default: <see langword="null"/>, the engine's <see cref="IdempotencyEngineOptions.Expiration"/> (24 hours).
    /// </summary>
    public TimeSpan? Expiration { get; set; }

    /// <summary>
    /// How long a duplicate that finds this operation InProgress waits for it to finish and replays its answer (zero:
    /// refuse at once). Default: <see langword="null"/>, the engine's <see cref="IdempotencyEngineOptions.InProgressWait"/> (zero).
    /// </summary>
    public TimeSpan? InProgressWait { get; set; }

    /// <summary>Checks the settings this policy yields on top of <paramref name="defaults"/> and returns what to change.</summary>
    /// <param name="defaults">The engine's settings, which fill in every setting the policy leaves unset.</param>
    /// <returns>One sentence per problem (without the policy's name: the caller prefixes it); empty when the policy is usable.</returns>
    public virtual IReadOnlyList<string> Validate(IdempotencyEngineOptions defaults)
    {
        ArgumentNullException.ThrowIfNull(defaults);
        var problems = new List<string>();
        var lease = Lease ?? defaults.Lease;
        var expiration = Expiration ?? defaults.Expiration;
        if (lease <= TimeSpan.Zero)
        {
            problems.Add($"Lease must be positive (it is {lease}); leave it unset for the engine's ({defaults.Lease}).");
        }

        if (expiration <= TimeSpan.Zero)
        {
            problems.Add($"Expiration must be positive (it is {expiration}); leave it unset for the engine's ({defaults.Expiration}).");
        }
        else if (expiration < lease)
        {
            problems.Add($"Expiration ({expiration}) must not be shorter than Lease ({lease}), or a record could vanish while its operation runs.");
        }

        if (RenewalInterval(defaults) is { } renewal && lease > TimeSpan.Zero && (renewal <= TimeSpan.Zero || renewal >= lease))
        {
            problems.Add($"LeaseRenewalInterval must be positive and shorter than Lease ({lease}) (it is {renewal}); leave it unset for a third of the lease.");
        }

        if (InProgressWait is { } wait && wait < TimeSpan.Zero)
        {
            problems.Add($"InProgressWait must not be negative (it is {wait}); zero refuses duplicates at once.");
        }

        return problems;
    }

    /// <summary>The explicit renewal interval in force, or <see langword="null"/> for a third of the lease.</summary>
    internal TimeSpan? RenewalInterval(IdempotencyEngineOptions defaults)
        => LeaseRenewalInterval ?? (Lease is null ? defaults.LeaseRenewalInterval : null);
}
