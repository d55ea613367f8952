using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>
/// The settings one idempotent endpoint runs with: <see cref="IdempotencyOptions"/>, with the endpoint's named policy
/// (if any) applied. Built once per policy and shared by every endpoint that names it (see
/// <see cref="IdempotencyEndpointCache"/>), so a request pays for none of it.
/// </summary>
internal sealed class IdempotencyEndpointSettings
{
    /// <param name="options">The global options.</param>
    /// <param name="policy">The endpoint's named policy, or <see langword="null"/> for the global options.</param>
    public IdempotencyEndpointSettings(IdempotencyOptions options, IdempotencyEndpointPolicy? policy)
    {
        Policy = policy;
        MaxRequestBodySize = policy?.MaxRequestBodySize ?? options.MaxRequestBodySize;
        MaxResponseBodySize = policy?.MaxResponseBodySize ?? options.MaxResponseBodySize;
        KeyReusedStatusCode = policy?.KeyReusedStatusCode ?? options.KeyReusedStatusCode;
        Expiration = policy?.Expiration ?? options.Expiration;
        ReplayRule = new IdempotencyReplayRule(policy?.StoreServerErrors ?? options.StoreServerErrors, policy?.RetryableStatusCodes ?? options.RetryableStatusCodes);
    }

    /// <summary>The named policy applied, or <see langword="null"/> for the global options.</summary>
    public IdempotencyEndpointPolicy? Policy { get; }

    public int MaxRequestBodySize { get; }

    public int MaxResponseBodySize { get; }

    public int KeyReusedStatusCode { get; }

    public TimeSpan Expiration { get; }

    /// <summary>Rows 10 and 11: which answers are stored (and replayed), and which release the record.</summary>
    public IdempotencyReplayRule ReplayRule { get; }

    /// <summary>
    /// The name of the policy an endpoint's metadata asks for: the last one it names
    /// (<c>.RequireIdempotencyKey("name")</c>, <c>[Idempotent(Policy = "name")]</c>), or <see langword="null"/>.
    /// </summary>
    public static string? PolicyNameOf(Endpoint endpoint) => PolicyNameOf(endpoint.Metadata);

    /// <summary>The name of the policy an endpoint's metadata asks for (see the other overload).</summary>
    public static string? PolicyNameOf(EndpointMetadataCollection metadata)
    {
        for (var i = metadata.Count - 1; i >= 0; i--)
        {
            switch (metadata[i])
            {
                case IdempotencyPolicyMetadata named:
                    return named.PolicyName;
                case IIdempotencyMetadata { Policy: { } policy }:
                    return policy;
            }
        }

        return null;
    }

    internal static InvalidOperationException UnknownPolicy(string name, IdempotencyOptions options, string? endpoint = null)
        => new($"Oncely: {(endpoint is null ? "an idempotent endpoint" : endpoint)} asks for the idempotency policy '{name}', but no policy of that name is registered " +
            $"(registered: {(options.Policies.Count == 0 ? "none" : string.Join(", ", options.Policies.Keys.Order(StringComparer.OrdinalIgnoreCase)))}). " +
            $"Add it with AddIdempotency(o => o.AddPolicy(\"{name}\", p => ...)) or in configuration under Oncely:Policies:{name}, or correct the name.");
}
