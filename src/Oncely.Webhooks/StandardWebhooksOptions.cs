namespace Oncely.Webhooks;

/// <summary>
/// The senders whose Standard Webhooks deliveries are accepted, with their signing secrets, and how far a delivery's
/// timestamp may be from now. Bind it from configuration or set it in <c>AddStandardWebhooks(...)</c>; it is validated
/// when the host starts.
/// </summary>
public sealed class StandardWebhooksOptions
{
    /// <summary>The header with the delivery's id, the same on every redelivery of one event: <c>webhook-id</c>.</summary>
    public const string IdHeaderName = "webhook-id";

    /// <summary>The header with the time the delivery was signed, in integer seconds since the Unix epoch: <c>webhook-timestamp</c>.</summary>
    public const string TimestampHeaderName = "webhook-timestamp";

    /// <summary>The header with the space-separated signatures (<c>v1,&lt;base64&gt;</c>): <c>webhook-signature</c>.</summary>
    public const string SignatureHeaderName = "webhook-signature";

    /// <summary>The smallest signing secret accepted, in bytes after base64 decoding: 16.</summary>
    public const int MinSecretBytes = 16;

    /// <summary>
    /// How far a delivery's <c>webhook-timestamp</c> may be from now (the <see cref="TimeProvider"/> registered in DI), in
    /// either direction, before a correctly signed delivery is refused as stale. It bounds how long a captured delivery can
    /// be replayed: up to twice the tolerance after it first ran (signed one tolerance ahead, accepted until one tolerance
    /// after its timestamp), so every webhook endpoint's records must live longer than twice the tolerance (its named
    /// policy's <c>Expiration</c>, else <c>IdempotencyOptions.Expiration</c>), which is checked at start-up. Default: 5 minutes.
    /// </summary>
    public TimeSpan TimestampTolerance { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// The senders, by name. The name is the verified sender's tenant: the records of one sender never meet another's.
    /// Names are compared exactly (ordinal). Default: none (every delivery is refused until one is added).
    /// </summary>
    public IDictionary<string, StandardWebhookSenderOptions> Senders { get; } = new Dictionary<string, StandardWebhookSenderOptions>(StringComparer.Ordinal);

    /// <summary>Adds (or extends) a sender with one or more signing secrets; several secrets are all accepted (rotation).</summary>
    /// <param name="name">The sender's name, for example <c>acme-pay</c>.</param>
    /// <param name="secrets">Its secrets as the provider shows them: <c>whsec_</c> followed by base64, padded with <c>=</c> or not (the prefix is optional).</param>
    /// <returns>The same options.</returns>
    public StandardWebhooksOptions AddSender(string name, params string[] secrets)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(secrets);
        if (!Senders.TryGetValue(name, out var sender))
        {
            Senders[name] = sender = new StandardWebhookSenderOptions();
        }

        foreach (var secret in secrets)
        {
            sender.Secrets.Add(secret);
        }

        return this;
    }

    /// <summary>Lists what is wrong with these options, each with what to change; empty when they are usable.</summary>
    /// <returns>The problems found.</returns>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (TimestampTolerance <= TimeSpan.Zero)
        {
            problems.Add($"Oncely.Webhooks: TimestampTolerance must be positive (it is {TimestampTolerance}); the default is 5 minutes.");
        }

        var owners = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, sender) in Senders)
        {
            if (string.IsNullOrWhiteSpace(name))
            {
                problems.Add("Oncely.Webhooks: a sender has an empty name; give every sender a name (it becomes the tenant of its records).");
                continue;
            }

            if (sender is null || sender.Secrets.Count == 0)
            {
                problems.Add($"Oncely.Webhooks: sender '{name}' has no signing secret; add the secret the provider shows (whsec_…).");
                continue;
            }

            foreach (var secret in sender.Secrets)
            {
                if (!StandardWebhookSecret.TryDecode(secret, out var key))
                {
                    problems.Add($"Oncely.Webhooks: a secret of sender '{name}' is not 'whsec_' followed by base64 (padded with '=' or not); copy it exactly as the provider shows it.");
                }
                else if (key.Length < MinSecretBytes)
                {
                    problems.Add($"Oncely.Webhooks: a secret of sender '{name}' decodes to {key.Length} bytes; secrets must have at least {MinSecretBytes} (Standard Webhooks recommends 24 to 64).");
                }
                else if (owners.TryGetValue(Convert.ToBase64String(key), out var other) && other != name)
                {
                    problems.Add($"Oncely.Webhooks: senders '{other}' and '{name}' share a secret, so a delivery signed with it could not be told apart; give each sender its own secret.");
                }
                else
                {
                    owners[Convert.ToBase64String(key)] = name;
                }
            }
        }

        return problems;
    }
}
