using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>
/// Settings of the idempotency middleware. Every default follows ../docs/decision-table.md. The key-reuse audit and the
/// purges are shared with every other transport: <see cref="IdempotencyMaintenanceOptions"/>.
/// </summary>
public sealed class IdempotencyOptions : IdempotencyEngineOptions
{
    /// <summary>The header carrying the key. Fixed by the IETF draft: <c>Idempotency-Key</c>.</summary>
    public const string HeaderName = "Idempotency-Key";

    /// <summary>The alias header accepted too (when <see cref="AcceptAliasHeader"/>): <c>X-Idempotency-Key</c>.</summary>
    public const string AliasHeaderName = "X-Idempotency-Key";

    /// <summary>The header added to every replayed answer: <c>Idempotent-Replayed: true</c>.</summary>
    public const string ReplayedHeaderName = "Idempotent-Replayed";

    /// <summary>
    /// The header added to a replay whose stored body was over <see cref="MaxResponseBodySize"/>:
    /// <c>Idempotent-Body-Omitted: true</c>.
    /// </summary>
    public const string BodyOmittedHeaderName = "Idempotent-Body-Omitted";

    /// <summary>Whether <c>X-Idempotency-Key</c> is accepted as an alias of <c>Idempotency-Key</c>. Default: <see langword="true"/>.</summary>
    public bool AcceptAliasHeader { get; set; } = true;

    /// <summary>
    /// The largest request body that is fingerprinted; a larger one is refused with <c>413</c> before anything runs
    /// (row 15). The body is held in memory up to this size. Default: 1 MiB.
    /// </summary>
    public int MaxRequestBodySize { get; set; } = 1024 * 1024;

    /// <summary>
    /// The largest response body that is stored for replay (row 16). A larger one still reaches the first caller and the
    /// record completes, but retries get the stored status and headers with an empty body and
    /// <c>Idempotent-Body-Omitted: true</c>; the operation never runs twice. Default: 1 MiB.
    /// </summary>
    public int MaxResponseBodySize { get; set; } = 1024 * 1024;

    /// <summary>
    /// Request headers that are part of the fingerprint (compared case-insensitively). Default: none; the method, path,
    /// sorted query and body always are.
    /// </summary>
    public ISet<string> FingerprintHeaders { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Response headers stored and replayed. Default: <c>Content-Type</c>, <c>Location</c>, <c>ETag</c>. The headers that
    /// describe the body itself (<c>Content-Type</c>, <c>Content-Encoding</c>, <c>Content-Language</c>,
    /// <c>Content-Disposition</c>, <c>Content-Range</c>, <c>Vary</c>) are always stored with it, so a body compressed
    /// inside the middleware stays decodable. <c>Set-Cookie</c> is never replayed and may not be added.
    /// </summary>
    public ISet<string> ReplayedHeaders { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { "Content-Type", "Location", "ETag" };

    /// <summary>
    /// The status for a key reused with a different payload (row 8). Default: <c>422</c>. Setting <c>409</c> is allowed,
    /// but beware: many clients (Stripe's SDKs among them) retry every <c>409</c> automatically, forever.
    /// </summary>
    public int KeyReusedStatusCode { get; set; } = StatusCodes.Status422UnprocessableEntity;

    /// <summary>Whether <c>5xx</c> answers are stored and replayed instead of releasing the record (row 11). Default: <see langword="false"/>.</summary>
    public bool StoreServerErrors { get; set; }

    /// <summary>
    /// The <c>4xx</c> answers that mean "try again" and therefore release the record instead of being stored (row 11),
    /// so a retry runs the operation again; every other <c>2xx</c>, <c>3xx</c> and <c>4xx</c> answer is stored and
    /// replayed (row 10). A set (a status added twice counts once). Default: 408, 409, 425, 429. Only <c>4xx</c>
    /// statuses are allowed. Configuration adds to the defaults (remove one in code, or give a named policy its own set).
    /// </summary>
    public ICollection<int> RetryableStatusCodes { get; } = new HashSet<int> { StatusCodes.Status408RequestTimeout, StatusCodes.Status409Conflict, 425, StatusCodes.Status429TooManyRequests };

    /// <summary>
    /// The named policies endpoints can ask for (<c>.RequireIdempotencyKey("payments")</c>,
    /// <c>[Idempotent(Policy = "payments")]</c>), by name, compared case-insensitively (configuration keys are).
    /// Add them with <see cref="AddPolicy"/> or bind them from configuration (<c>Oncely:Policies:payments:Lease</c>);
    /// both fill the same entry. An endpoint that names a policy missing here stops the host at start-up. Default: none.
    /// </summary>
    public IDictionary<string, IdempotencyEndpointPolicy> Policies { get; } = new Dictionary<string, IdempotencyEndpointPolicy>(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Adds the named policy <paramref name="name"/>, or changes it if it exists (for example when configuration bound it
    /// first): <paramref name="configure"/> sets what its endpoints do differently from these options.
    /// </summary>
    /// <param name="name">The policy's name, for example <c>payments</c>.</param>
    /// <param name="configure">Sets the policy's lease, expiration, body limits or status-code policy.</param>
    /// <returns>These options.</returns>
    public IdempotencyOptions AddPolicy(string name, Action<IdempotencyEndpointPolicy> configure)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(configure);
        if (!Policies.TryGetValue(name, out var policy))
        {
            policy = new IdempotencyEndpointPolicy();
            Policies[name] = policy;
        }

        configure(policy);
        return this;
    }

    /// <summary>The <c>Retry-After</c> sent with <c>409</c> in-progress answers (row 7). Default: 1 second.</summary>
    public TimeSpan InProgressRetryAfter { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The <c>Retry-After</c> sent with <c>503</c> store-unavailable answers (row 13). Default: 1 second.</summary>
    public TimeSpan StoreUnavailableRetryAfter { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The base of the problem <c>type</c> URIs; each problem appends its name (for example <c>idempotency-key-missing</c>).
    /// Default: <c>https://oncely.dev/problems/</c>.
    /// </summary>
    public string ProblemTypeBaseUri { get; set; } = "https://oncely.dev/problems/";

    /// <summary>
    /// Resolves the tenant of a request (the first half of the scope). Return <see langword="null"/> (or empty) when
    /// there is none: an unauthenticated caller is then refused with <c>401</c> unless the endpoint opts into the shared
    /// anonymous scope (<c>AllowAnonymousIdempotency()</c>), and an authenticated one with <c>500</c> (a configuration
    /// problem); nothing runs either way. Default: the authenticated principal's <c>NameIdentifier</c> claim, else its
    /// <c>sub</c> claim; <see langword="null"/> for unauthenticated callers.
    /// </summary>
    public Func<HttpContext, string?> TenantResolver { get; set; } = DefaultTenantResolver.Resolve;

    /// <inheritdoc />
    public override IReadOnlyList<string> Validate()
    {
        var problems = new List<string>(base.Validate());
        if (MaxRequestBodySize < 0)
        {
            problems.Add($"Oncely: MaxRequestBodySize must not be negative (it is {MaxRequestBodySize}); the default is 1 MiB.");
        }

        if (MaxResponseBodySize < 0)
        {
            problems.Add($"Oncely: MaxResponseBodySize must not be negative (it is {MaxResponseBodySize}); the default is 1 MiB.");
        }

        if (ReplayedHeaders.Contains("Set-Cookie"))
        {
            problems.Add("Oncely: ReplayedHeaders must not contain Set-Cookie: a replay would hand one caller's session to another. Remove it.");
        }

        if (KeyReusedStatusCode is < 400 or > 499)
        {
            problems.Add($"Oncely: KeyReusedStatusCode must be a 4xx status (it is {KeyReusedStatusCode}); the default is 422, 409 is the common alternative.");
        }

        if (InProgressRetryAfter < TimeSpan.Zero || StoreUnavailableRetryAfter < TimeSpan.Zero)
        {
            problems.Add("Oncely: InProgressRetryAfter and StoreUnavailableRetryAfter must not be negative.");
        }

        if (!Uri.TryCreate(ProblemTypeBaseUri, UriKind.Absolute, out _))
        {
            problems.Add($"Oncely: ProblemTypeBaseUri must be an absolute URI (it is '{ProblemTypeBaseUri}').");
        }

        if (TenantResolver is null)
        {
            problems.Add("Oncely: TenantResolver must be set (leave it at its default if unsure).");
        }

        if (OutsideClientErrors(RetryableStatusCodes) is { } outside)
        {
            problems.Add($"Oncely: RetryableStatusCodes may only hold 4xx statuses (it holds {outside}); 5xx answers follow StoreServerErrors.");
        }

        foreach (var (name, policy) in Policies)
        {
            if (string.IsNullOrWhiteSpace(name) || policy is null)
            {
                problems.Add($"Oncely: the policy named '{name}' needs a non-blank name and settings.");
                continue;
            }

            problems.AddRange(policy.Validate(this).Select(problem => $"Oncely: policy '{name}': {problem}"));
        }

        return problems;
    }

    /// <summary>The statuses of <paramref name="codes"/> outside 400–499, listed; <see langword="null"/> when there are none.</summary>
    internal static string? OutsideClientErrors(IEnumerable<int> codes)
    {
        var outside = codes.Where(code => code is < 400 or > 499).Order().ToList();
        return outside.Count == 0 ? null : string.Join(", ", outside);
    }
}
