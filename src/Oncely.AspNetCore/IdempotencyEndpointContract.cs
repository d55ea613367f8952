using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Oncely.AspNetCore;

/// <summary>
/// What a client of one idempotent endpoint has to know, derived from the same <see cref="IdempotencyEndpoint"/> the
/// middleware runs and the options in force: where the key is and its limits, whether it is required, which answers are
/// replayed (<see cref="Stores"/>, the middleware's own <see cref="IdempotencyReplayRule"/>) and the refusals the
/// middleware can answer with (<see cref="IdempotencyRefusals"/>). Describes the endpoint to API documentation (the
/// OpenAPI transformer in <c>Oncely.AspNetCore.OpenApi</c>).
/// </summary>
internal sealed class IdempotencyEndpointContract
{
    private readonly IdempotencyEndpoint _endpoint;
    private readonly IdempotencyOptions _options;

    private IdempotencyEndpointContract(IdempotencyEndpoint endpoint, IdempotencyOptions options, IdempotencySenderDescription? sender, bool answersProtected)
    {
        _endpoint = endpoint;
        _options = options;
        Sender = sender;
        AnswersProtected = answersProtected;
    }

    /// <summary>
    /// Whether stored answers are encrypted (<c>ProtectStoredAnswers()</c>): then a retry whose stored answer can no longer
    /// be decrypted is refused with <c>410</c> (row 6a).
    /// </summary>
    public bool AnswersProtected { get; }

    public bool KeyRequired => _endpoint.KeyRequired;

    public bool AllowAnonymous => _endpoint.AllowAnonymous;

    /// <summary>Where the key is read from.</summary>
    public IdempotencyKeySource KeySource => _endpoint.KeySource;

    /// <summary>The header parameter that carries the key, or <see langword="null"/> when it is in the body.</summary>
    public string? KeyHeader => _endpoint.KeySource.Header;

    /// <summary>Where the key is, in words (<c>the Idempotency-Key header</c>).</summary>
    public string KeyLocation => _endpoint.KeySource.Description;

    /// <summary>The alias header accepted for the key, or <see langword="null"/>.</summary>
    public string? AliasHeader => _endpoint.KeySource.AliasHeader;

    public bool SenderVerified => _endpoint.SenderVerifier is not null;

    public IdempotencySenderDescription? Sender { get; }

    public int MaxKeyLength => _options.MaxKeyLength;

    public int KeyReusedStatusCode => _endpoint.Settings.KeyReusedStatusCode;

    public TimeSpan InProgressRetryAfter => _options.InProgressRetryAfter;

    public TimeSpan StoreUnavailableRetryAfter => _options.StoreUnavailableRetryAfter;

    public int MaxRequestBodySize => _endpoint.Settings.MaxRequestBodySize;

    public TimeSpan Expiration => _endpoint.Settings.Expiration;

    public string ProblemTypeBaseUri => _options.ProblemTypeBaseUri;

    /// <summary>
    /// Whether the sender verifier requires the header the key is read from (a webhook's <c>webhook-id</c>): then a request
    /// without it is refused by the verifier (<c>401</c>) before its key is read, never with <c>400</c> key-missing.
    /// </summary>
    public bool SenderRequiresKeyHeader => KeyHeader is { } header
        && Sender?.Headers.Any(h => string.Equals(h.Name, header, StringComparison.OrdinalIgnoreCase)) == true;

    /// <summary>The contract of an endpoint, or <see langword="null"/> when it is not idempotent (row 1).</summary>
    /// <param name="metadata">The endpoint's metadata (<c>Endpoint.Metadata</c>, or an API description's <c>EndpointMetadata</c>).</param>
    /// <param name="services">The application's services, for the options in force.</param>
    public static IdempotencyEndpointContract? For(IEnumerable<object> metadata, IServiceProvider services)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(services);
        var collection = metadata as EndpointMetadataCollection ?? new EndpointMetadataCollection(metadata);
        var options = services.GetService<IOptions<IdempotencyOptions>>()?.Value ?? new IdempotencyOptions();
        return IdempotencyEndpoint.Describe(collection, options) is { } endpoint
            ? new IdempotencyEndpointContract(endpoint, options, endpoint.SenderVerifier?.Describe(services), services.GetService<StoredAnswerProtection>() is not null)
            : null;
    }

    /// <summary>Whether the middleware stores (and so replays) a handler's answer with this status (rows 10 and 11).</summary>
    public bool Stores(int status) => _endpoint.Settings.ReplayRule.Stores(status);
}
