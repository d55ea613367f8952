using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>
/// The middleware's endpoints: each <see cref="IdempotencyEndpoint"/> built on its endpoint's first request and kept for
/// as long as the endpoint lives (a rebuilt endpoint data source drops its old endpoints with them). Settings and
/// executors are built once per named policy and shared by every endpoint that names it. Owned by one middleware
/// instance, so two applications (or two tests) in one process never share it.
/// </summary>
internal sealed class IdempotencyEndpointCache(IdempotencyOptions options, IdempotencyExecutor executor)
{
    private readonly ConditionalWeakTable<Endpoint, Entry> _endpoints = [];
    private readonly ConcurrentDictionary<string, Runtime> _byPolicy = new(StringComparer.OrdinalIgnoreCase);
    private readonly Runtime _global = new(new IdempotencyEndpointSettings(options, null), executor);

    /// <summary>The endpoint as the middleware runs it, or <see langword="null"/> when it is not idempotent (row 1).</summary>
    /// <exception cref="InvalidOperationException">The endpoint names a policy that is not registered.</exception>
    public IdempotencyEndpoint? For(Endpoint endpoint)
        => (_endpoints.TryGetValue(endpoint, out var entry) ? entry : _endpoints.GetValue(endpoint, Create)).Endpoint;

    private Entry Create(Endpoint endpoint)
    {
        if (endpoint.Metadata.GetMetadata<IIdempotencyMetadata>() is null)
        {
            return Entry.NotIdempotent;
        }

        var runtime = IdempotencyEndpointSettings.PolicyNameOf(endpoint) is { } name ? _byPolicy.GetOrAdd(name, ForPolicy) : _global;
        return new Entry(IdempotencyEndpoint.Create(endpoint, options, runtime.Settings, runtime.Executor));
    }

    private Runtime ForPolicy(string name)
        => options.Policies.TryGetValue(name, out var policy)
            ? new Runtime(new IdempotencyEndpointSettings(options, policy), executor.WithPolicy(policy))
            : throw IdempotencyEndpointSettings.UnknownPolicy(name, options);

    private sealed record Runtime(IdempotencyEndpointSettings Settings, IdempotencyExecutor Executor);

    private sealed class Entry(IdempotencyEndpoint? endpoint)
    {
        public static readonly Entry NotIdempotent = new(null);

        public IdempotencyEndpoint? Endpoint { get; } = endpoint;
    }
}
