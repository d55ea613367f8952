using System.Collections.Concurrent;
using System.Collections.Frozen;
using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>
/// The settings one idempotent endpoint runs with: <see cref="IdempotencyOptions"/>, with the endpoint's named policy
/// (if any) applied. Resolved once per endpoint (cached on its <see cref="IdempotencyEndpointPlan"/>) and shared by every
/// endpoint that names the same policy, so a request pays for none of it.
/// </summary>
internal sealed class IdempotencyEndpointSettings
{
    private readonly FrozenSet<int> _retryableStatusCodes;

    private IdempotencyEndpointSettings(IdempotencyOptions options, IdempotencyExecutor executor, string? policyName, IdempotencyEndpointPolicy? policy)
    {
        PolicyName = policyName;
        Executor = policy is null ? executor : executor.WithPolicy(policy);
        MaxRequestBodySize = policy?.MaxRequestBodySize ?? options.MaxRequestBodySize;
        MaxResponseBodySize = policy?.MaxResponseBodySize ?? options.MaxResponseBodySize;
        StoreServerErrors = policy?.StoreServerErrors ?? options.StoreServerErrors;
        KeyReusedStatusCode = policy?.KeyReusedStatusCode ?? options.KeyReusedStatusCode;
        _retryableStatusCodes = (policy?.RetryableStatusCodes ?? options.RetryableStatusCodes).ToFrozenSet();
    }

    /// <summary>The policy's name, or <see langword="null"/> for the global options.</summary>
    public string? PolicyName { get; }

    /// <summary>The executor bound to the policy's lease, expiration and in-progress wait.</summary>
    public IdempotencyExecutor Executor { get; }

    public int MaxRequestBodySize { get; }

    public int MaxResponseBodySize { get; }

    public bool StoreServerErrors { get; }

    public int KeyReusedStatusCode { get; }

    /// <summary>Rows 10 and 11: whether an answer with <paramref name="status"/> is stored (or the record released).</summary>
    public bool ShouldStore(int status)
        => status >= 500 ? StoreServerErrors : !_retryableStatusCodes.Contains(status);

    /// <summary>
    /// The name of the policy <paramref name="endpoint"/> asks for: the last one its metadata names
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

    /// <summary>The settings per policy name, built on first use and shared by every endpoint that names the policy.</summary>
    internal sealed class Cache(IdempotencyOptions options, IdempotencyExecutor executor)
    {
        private readonly ConcurrentDictionary<string, IdempotencyEndpointSettings> _byPolicy = new(StringComparer.OrdinalIgnoreCase);
        private readonly IdempotencyEndpointSettings _global = new(options, executor, null, null);

        /// <exception cref="InvalidOperationException">No policy of that name is registered.</exception>
        public IdempotencyEndpointSettings For(Endpoint endpoint)
            => PolicyNameOf(endpoint) is { } name ? _byPolicy.GetOrAdd(name, Create) : _global;

        private IdempotencyEndpointSettings Create(string name)
            => options.Policies.TryGetValue(name, out var policy)
                ? new IdempotencyEndpointSettings(options, executor, name, policy)
                : throw UnknownPolicy(name, options);
    }

    internal static InvalidOperationException UnknownPolicy(string name, IdempotencyOptions options, string? endpoint = null)
        => new($"Oncely: {(endpoint is null ? "an idempotent endpoint" : endpoint)} asks for the idempotency policy '{name}', but no policy of that name is registered " +
            $"(registered: {(options.Policies.Count == 0 ? "none" : string.Join(", ", options.Policies.Keys.Order(StringComparer.OrdinalIgnoreCase)))}). " +
            $"Add it with AddIdempotency(o => o.AddPolicy(\"{name}\", p => ...)) or in configuration under Oncely:Policies:{name}, or correct the name.");
}
