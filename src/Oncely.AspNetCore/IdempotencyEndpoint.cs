using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Oncely.AspNetCore;

/// <summary>
/// Everything Oncely knows about one idempotent endpoint, read from its metadata once: whether a key is required and where
/// it is read (<see cref="KeySource"/>), whether anonymous callers are served, whether the handler reserves itself
/// (one-commit), who signs its requests, the operation its records are kept under (the second half of the scope) and the
/// settings its named policy gives it. The middleware builds one per endpoint on its first request and keeps it
/// (<see cref="IdempotencyEndpointCache"/>); the start-up checks and the OpenAPI contract
/// (<see cref="IdempotencyEndpointContract"/>) read endpoints through it too, so they say what the middleware does.
/// </summary>
internal sealed class IdempotencyEndpoint
{
    private readonly IdempotencyExecutor? _executor;

    // One operation string per canonical method: endpoints usually accept one method, so this stays a single entry.
    private KeyValuePair<string, string>[] _operations = [];

    private IdempotencyEndpoint(
        IIdempotencyMetadata metadata,
        EndpointMetadataCollection collection,
        string? displayName,
        string target,
        IdempotencyOptions options,
        IdempotencyEndpointSettings settings,
        IdempotencyExecutor? executor)
    {
        KeyRequired = metadata.KeyRequired;
        AllowAnonymous = metadata.AllowAnonymous || collection.GetMetadata<AnonymousIdempotencyScopeMetadata>() is not null;
        OneCommit = metadata.OneCommitReservation || collection.GetMetadata<OneCommitReservationMetadata>() is not null;
        ExplicitOperation = collection.GetMetadata<IdempotencyOperationMetadata>()?.Operation ?? metadata.Operation;
        KeySource = IdempotencyKeySource.For(collection, metadata, displayName, options);
        SenderVerifier = collection.GetMetadata<IIdempotencySenderVerifier>();
        Target = target;
        Settings = settings;
        _executor = executor;
    }

    public bool KeyRequired { get; }

    public bool AllowAnonymous { get; }

    /// <summary>One-commit mode: the handler reserves inside its own transaction; the middleware only reads first.</summary>
    public bool OneCommit { get; }

    /// <summary>The operation set by <c>WithIdempotencyOperation</c> or <c>[Idempotent(Operation = …)]</c>, if any.</summary>
    public string? ExplicitOperation { get; }

    /// <summary>What the endpoint is, without the method: the route pattern plus host and route-value discriminators.</summary>
    public string Target { get; }

    /// <summary>Where the key is read: the <c>Idempotency-Key</c> header unless a convention or the attribute says otherwise.</summary>
    public IdempotencyKeySource KeySource { get; }

    /// <summary>Who sent the request, for endpoints whose callers sign it (webhooks); <see langword="null"/> for the tenant resolver.</summary>
    public IIdempotencySenderVerifier? SenderVerifier { get; }

    /// <summary>Whether the body must be read before the key and the caller: it names the sender, or holds the key.</summary>
    public bool ReadsBodyFirst => SenderVerifier is not null || KeySource.ReadsBody;

    /// <summary>The options in force for this endpoint, its named policy applied.</summary>
    public IdempotencyEndpointSettings Settings { get; }

    /// <summary>The executor bound to the endpoint's policy (lease, expiration, in-progress wait). Only the middleware's endpoints have one.</summary>
    /// <exception cref="InvalidOperationException">The endpoint was only described (<see cref="Describe(Endpoint, IdempotencyOptions)"/>).</exception>
    public IdempotencyExecutor Executor => _executor ?? throw new InvalidOperationException("This endpoint was read to be described, not to be run.");

    /// <summary>
    /// An endpoint as the middleware runs it, or <see langword="null"/> when it is not idempotent (row 1). Called once per
    /// endpoint by <see cref="IdempotencyEndpointCache"/>.
    /// </summary>
    public static IdempotencyEndpoint? Create(Endpoint endpoint, IdempotencyOptions options, IdempotencyEndpointSettings settings, IdempotencyExecutor executor)
        => endpoint.Metadata.GetMetadata<IIdempotencyMetadata>() is { } metadata
            ? new IdempotencyEndpoint(metadata, endpoint.Metadata, endpoint.DisplayName, TargetOf(endpoint), options, settings, executor)
            : null;

    /// <summary>
    /// An endpoint read for a start-up check, or <see langword="null"/> when it is not idempotent. Not cached; a policy
    /// name that is not registered reads as the global options (the start-up check reports it).
    /// </summary>
    public static IdempotencyEndpoint? Describe(Endpoint endpoint, IdempotencyOptions options)
        => endpoint.Metadata.GetMetadata<IIdempotencyMetadata>() is { } metadata
            ? new IdempotencyEndpoint(metadata, endpoint.Metadata, endpoint.DisplayName, TargetOf(endpoint), options, SettingsFor(endpoint.Metadata, options), null)
            : null;

    /// <summary>
    /// An endpoint read from its metadata alone (an API description's), for documentation; its <see cref="Target"/> is
    /// empty. <see langword="null"/> when it is not idempotent.
    /// </summary>
    public static IdempotencyEndpoint? Describe(EndpointMetadataCollection metadata, IdempotencyOptions options)
        => metadata.GetMetadata<IIdempotencyMetadata>() is { } idempotency
            ? new IdempotencyEndpoint(idempotency, metadata, null, string.Empty, options, SettingsFor(metadata, options), null)
            : null;

    /// <summary>
    /// The record's operation: the canonical (upper-case) method plus <see cref="Target"/>, so every spelling of a
    /// method that reaches this endpoint (<c>post</c>, <c>Post</c>) is one operation.
    /// </summary>
    public string OperationFor(string method)
    {
        if (ExplicitOperation is not null)
        {
            return ExplicitOperation;
        }

        var operations = Volatile.Read(ref _operations);
        foreach (var (known, operation) in operations)
        {
            if (string.Equals(known, method, StringComparison.Ordinal))
            {
                return operation;
            }
        }

        var canonical = CanonicalMethod(method);
        var built = $"{canonical} {Target}";
        if (operations.Length < 8)
        {
            // Bounded: a client inventing method spellings cannot grow it without limit.
            Volatile.Write(ref _operations, [.. operations, new(method, built)]);
        }

        return built;
    }

    public static string CanonicalMethod(string method)
    {
        // Known methods come back as the framework's upper-case constants whatever their spelling; others are upper-cased.
        var known = HttpMethods.GetCanonicalizedValue(method);
        return HasLowerCase(known) ? known.ToUpperInvariant() : known;
    }

    private static IdempotencyEndpointSettings SettingsFor(EndpointMetadataCollection metadata, IdempotencyOptions options)
        => new(options, IdempotencyEndpointSettings.PolicyNameOf(metadata) is { } name && options.Policies.TryGetValue(name, out var policy) ? policy : null);

    private static bool HasLowerCase(string value)
    {
        foreach (var c in value)
        {
            if (char.IsLower(c))
            {
                return true;
            }
        }

        return false;
    }

    // "/accounts/{id}/payments", then " host=a.example,b.example" when the endpoint is bound to hosts, then
    // " {action=Pay,controller=Orders}" when routing tells endpoints of one pattern apart by route values (conventional
    // MVC routes such as "{controller}/{action}/{id?}").
    private static string TargetOf(Endpoint endpoint)
    {
        var target = new StringBuilder();
        if (endpoint is RouteEndpoint { RoutePattern: var pattern })
        {
            var raw = pattern.RawText ?? string.Empty;
            if (!raw.StartsWith('/'))
            {
                target.Append('/');
            }

            target.Append(raw);
            // Only values that fill a parameter of the pattern: attribute routes already spell them out as literals,
            // and leaving them out keeps a renamed C# method from renaming the operation.
            var values = pattern.RequiredValues
                .Where(v => v.Value is not null
                    && !ReferenceEquals(v.Value, Microsoft.AspNetCore.Routing.Patterns.RoutePattern.RequiredValueAny)
                    && pattern.GetParameter(v.Key) is not null)
                .OrderBy(v => v.Key, StringComparer.OrdinalIgnoreCase)
                .Select(v => $"{v.Key.ToLowerInvariant()}={v.Value}")
                .ToArray();
            if (values.Length > 0)
            {
                target.Append(" {").AppendJoin(',', values).Append('}');
            }
        }
        else
        {
            target.Append(endpoint.DisplayName);
        }

        var hosts = endpoint.Metadata.GetMetadata<IHostMetadata>()?.Hosts;
        if (hosts is { Count: > 0 })
        {
            target.Append(" host=").AppendJoin(',', hosts.Select(h => h.ToLowerInvariant()).Order(StringComparer.Ordinal));
        }

        return target.ToString();
    }
}
