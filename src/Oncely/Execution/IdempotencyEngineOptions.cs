namespace Oncely;

/// <summary>
/// Settings of the transport-agnostic engine. The ASP.NET Core options derive from this class, so one configuration
/// callback sets everything.
/// </summary>
public class IdempotencyEngineOptions
{
    /// <summary>
    /// How long an InProgress reservation is held, from its last renewal, before a retry may take it over
    /// (decision-table rows 12 and 21). While the operation runs the lease is renewed (see <see cref="RenewLease"/>), so
    /// it bounds how long a crashed worker's record stays blocked, not how long an operation may run. Default: 30 seconds.
    /// </summary>
    public TimeSpan Lease { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Whether the lease is renewed in the background while the operation runs (row 21), fenced by the attempt's token,
    /// so an operation slower than <see cref="Lease"/> is never taken over while it still runs. With it off, the lease
    /// is only renewed by recovery points and must exceed the slowest operation. Default: <see langword="true"/>.
    /// </summary>
    public bool RenewLease { get; set; } = true;

    /// <summary>
    /// How often the lease is renewed while the operation runs. Must be positive and shorter than <see cref="Lease"/>.
    /// Default: <see langword="null"/>, a third of <see cref="Lease"/> (10 seconds for the default lease), so two
    /// renewals in a row may fail (a store hiccup) before the lease runs out.
    /// </summary>
    public TimeSpan? LeaseRenewalInterval { get; set; }

    /// <summary>The renewal interval in force: <see cref="LeaseRenewalInterval"/>, or a third of <see cref="Lease"/>.</summary>
    internal TimeSpan EffectiveLeaseRenewalInterval => LeaseRenewalInterval ?? Lease / 3;

    /// <summary>How long a record lives (TTL) before it is treated as absent and purged (row 14). Default: 24 hours.</summary>
    public TimeSpan Expiration { get; set; } = TimeSpan.FromHours(24);

    /// <summary>
    /// The longest one store call may take before the store counts as unavailable (row 13: fail closed).
    /// Default: 5 seconds.
    /// </summary>
    public TimeSpan StoreTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How many times writing a completion is retried after the operation ran, if the store fails (row 17). The record
    /// is never released after such a failure. Default: 3 retries.
    /// </summary>
    public int CompletionRetries { get; set; } = 3;

    /// <summary>The first delay between completion retries; later ones back off exponentially. Default: 100 milliseconds.</summary>
    public TimeSpan CompletionRetryDelay { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// How long a duplicate that finds the operation InProgress waits for it to finish and replays its answer, instead
    /// of being refused at once (row 7). The wait ends early when the caller goes away (over HTTP, when the client hangs
    /// up: no answer, no further store calls, not a store failure). Default: zero (refuse at once with <c>409</c> and
    /// <c>Retry-After</c>).
    /// </summary>
    public TimeSpan InProgressWait { get; set; } = TimeSpan.Zero;

    /// <summary>How often a waiting duplicate looks at the record again. Default: 100 milliseconds.</summary>
    public TimeSpan InProgressPollInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// One-commit mode only (<see cref="IdempotencyExecution.ReserveInTransactionAsync"/>): how long the reservation
    /// made inside the operation's transaction waits for another transaction that holds the same key, uncommitted.
    /// When the other transaction commits in time, the duplicate replays its answer; when it rolls back, the duplicate
    /// runs; when the wait runs out, the duplicate is refused as in progress (<c>409</c>, row 7). Stores that bound the
    /// wait themselves (SQLite: its busy timeout, spent when the write transaction begins) may ignore it.
    /// Default: 5 seconds; between 1 millisecond and 1 minute.
    /// </summary>
    public TimeSpan ReservationLockTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The longest key accepted, in characters; a longer one is refused before the store is asked. Default: 255; at most
    /// 4096, and at most what the store can index (<see cref="IIdempotencyStoreLimits"/>: 1024 for PostgreSQL), checked
    /// when the host starts.
    /// </summary>
    public int MaxKeyLength { get; set; } = IdempotencyKeyParser.DefaultMaxLength;

    /// <summary>
    /// Whether the body of a successful answer (a status below 300: every 2xx answer, and a message consumer's result) is
    /// stored. When <see langword="false"/> (minimisation), only its status and headers are kept and a retry is answered
    /// as decision-table row 16 answers an answer too large to keep: the stored status and headers, no body, and
    /// <c>Idempotent-Body-Omitted: true</c> over HTTP; the operation still never runs twice. For teams that would rather
    /// have clients re-fetch the resource (its <c>Location</c> is replayed) than keep a copy of it. Error answers (4xx)
    /// keep their bodies: they tell the client what to fix. Default: <see langword="true"/>.
    /// </summary>
    public bool StoreSuccessfulResponseBodies { get; set; } = true;

    /// <summary>
    /// Checks the settings and returns what to change, or an empty list.
    /// </summary>
    /// <returns>One sentence per problem.</returns>
    public virtual IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (Lease <= TimeSpan.Zero)
        {
            problems.Add($"Oncely: Lease must be positive (it is {Lease}); the default is 30 seconds and it must exceed your slowest operation.");
        }

        if (Expiration <= TimeSpan.Zero)
        {
            problems.Add($"Oncely: Expiration must be positive (it is {Expiration}); the default is 24 hours.");
        }
        else if (Expiration < Lease)
        {
            problems.Add($"Oncely: Expiration ({Expiration}) must not be shorter than Lease ({Lease}), or a record could vanish while its operation runs.");
        }

        if (LeaseRenewalInterval is { } renewal && (renewal <= TimeSpan.Zero || renewal >= Lease))
        {
            problems.Add($"Oncely: LeaseRenewalInterval must be positive and shorter than Lease ({Lease}) (it is {renewal}); leave it unset for a third of the lease, or set RenewLease = false to turn renewal off.");
        }

        if (StoreTimeout <= TimeSpan.Zero)
        {
            problems.Add($"Oncely: StoreTimeout must be positive (it is {StoreTimeout}); the default is 5 seconds.");
        }

        if (CompletionRetries is < 0 or > 10)
        {
            problems.Add($"Oncely: CompletionRetries must be between 0 and 10 (it is {CompletionRetries}); the default is 3.");
        }

        if (CompletionRetryDelay < TimeSpan.Zero)
        {
            problems.Add($"Oncely: CompletionRetryDelay must not be negative (it is {CompletionRetryDelay}).");
        }

        if (InProgressWait < TimeSpan.Zero)
        {
            problems.Add($"Oncely: InProgressWait must not be negative (it is {InProgressWait}); zero refuses duplicates at once.");
        }

        if (InProgressWait > TimeSpan.Zero && InProgressPollInterval <= TimeSpan.Zero)
        {
            problems.Add($"Oncely: InProgressPollInterval must be positive when InProgressWait is set (it is {InProgressPollInterval}).");
        }

        if (MaxKeyLength is < 1 or > 4096)
        {
            problems.Add($"Oncely: MaxKeyLength must be between 1 and 4096 (it is {MaxKeyLength}); the default is 255.");
        }

        if (ReservationLockTimeout < TimeSpan.FromMilliseconds(1) || ReservationLockTimeout > TimeSpan.FromMinutes(1))
        {
            problems.Add($"Oncely: ReservationLockTimeout must be between 1 millisecond and 1 minute (it is {ReservationLockTimeout}); the default is 5 seconds.");
        }

        return problems;
    }
}
