namespace Oncely;

/// <summary>
/// Settings of what every transport shares about the store's upkeep: the key-reuse audit (what an entry keeps, how long
/// entries live) and the purge of expired records. One set per application, however many transports it runs
/// (<c>AddIdempotency</c>, <c>AddIdempotentConsumers</c>): set them with
/// <see cref="IdempotencyBuilderExtensions.ConfigureMaintenance"/>, or, over HTTP, from the same configuration section as
/// the other options (<c>Oncely:PurgeInterval</c>, <c>Oncely:AuditRetention</c>, …).
/// </summary>
public sealed class IdempotencyMaintenanceOptions
{
    /// <summary>
    /// Turns a refused payload (a key reused with a different payload, decision-table row 8) into the text kept in the
    /// audit, before it is capped at <see cref="AuditPayloadLimit"/>. Arguments: the content type and the bytes the
    /// fingerprint hashed (a request body, or a message). Default: <see cref="IdempotencyPayloadRedactor.Redact"/> (JSON
    /// keeps its shape with the values of sensitive-looking members — card, cvc, pan, password, secret, token, iban,
    /// account number… — replaced by <c>"***"</c>, and every card number in any value masked to its last four digits;
    /// anything else is summarised by its length). Whatever this returns is then masked for card numbers and passed to
    /// the application's redactor for <see cref="OncelyTaxonomy.Payload"/> before it is logged or stored: a function of
    /// your own cannot write a card number.
    /// </summary>
    public Func<string?, ReadOnlyMemory<byte>, string> PayloadRedactor { get; set; } = IdempotencyPayloadRedactor.Redact;

    /// <summary>The most characters of a redacted payload kept in the audit. Default: 2048.</summary>
    public int AuditPayloadLimit { get; set; } = 2048;

    /// <summary>
    /// How often expired records (stores without native expiry: SQL, in-memory) and key-reuse audit entries older than
    /// <see cref="AuditRetention"/> are purged. Default: 5 minutes; at most <see cref="MaxPurgeInterval"/>.
    /// </summary>
    public TimeSpan PurgeInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The longest <see cref="PurgeInterval"/>: 49 days, just under the longest period a .NET timer supports.</summary>
    public static readonly TimeSpan MaxPurgeInterval = TimeSpan.FromDays(49);

    /// <summary>The most rows one purge statement deletes; purging repeats until a batch comes back short. Default: 500.</summary>
    public int PurgeBatchSize { get; set; } = 500;

    /// <summary>
    /// How long key-reuse audit entries are kept, for stores that keep an audit (<see cref="IIdempotencyAuditStore"/>).
    /// Every <see cref="PurgeInterval"/> the sweeper deletes older entries, in batches of <see cref="PurgeBatchSize"/>,
    /// measured with the store's clock, so a key re-sent with ever-changing payloads cannot grow the database without
    /// bound. Default: 30 days.
    /// </summary>
    public TimeSpan AuditRetention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>Checks the settings and returns what to change, or an empty list.</summary>
    /// <returns>One sentence per problem.</returns>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (PayloadRedactor is null)
        {
            problems.Add("Oncely: PayloadRedactor must be set (leave it at its default if unsure).");
        }

        if (AuditPayloadLimit < 0)
        {
            problems.Add($"Oncely: AuditPayloadLimit must not be negative (it is {AuditPayloadLimit}).");
        }

        if (PurgeInterval <= TimeSpan.Zero || PurgeBatchSize <= 0)
        {
            problems.Add($"Oncely: PurgeInterval and PurgeBatchSize must be positive (they are {PurgeInterval} and {PurgeBatchSize}).");
        }

        if (PurgeInterval > MaxPurgeInterval)
        {
            problems.Add($"Oncely: PurgeInterval must be at most 49 days, the longest period a .NET timer supports (it is {PurgeInterval}); purging more often than needed is harmless.");
        }

        if (AuditRetention <= TimeSpan.Zero)
        {
            problems.Add($"Oncely: AuditRetention must be positive (it is {AuditRetention}); the default is 30 days.");
        }

        return problems;
    }
}
