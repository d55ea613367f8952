using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Oncely.AspNetCore;

/// <summary>
/// What the middleware needs to know about one idempotent endpoint, read from its metadata once and cached for the
/// endpoint's lifetime: whether a key is required, whether anonymous callers are served, and the operation its
/// records are kept under (the second half of the scope).
/// </summary>
internal sealed class IdempotencyEndpointPlan
{
    private static readonly ConditionalWeakTable<Endpoint, IdempotencyEndpointPlan?> Plans = [];

    // One operation string per canonical method: endpoints usually accept one method, so this stays a single entry.
    private KeyValuePair<string, string>[] _operations = [];

    private IdempotencyEndpointPlan(bool keyRequired, bool allowAnonymous, bool oneCommit, string? explicitOperation, string target)
    {
        KeyRequired = keyRequired;
        OneCommit = oneCommit;
        AllowAnonymous = allowAnonymous;
        ExplicitOperation = explicitOperation;
        Target = target;
    }

    public bool KeyRequired { get; }

    public bool AllowAnonymous { get; }

    /// <summary>One-commit mode: the handler reserves inside its own transaction; the middleware only reads first.</summary>
    public bool OneCommit { get; }

    /// <summary>The operation set by <c>WithIdempotencyOperation</c> or <c>[Idempotent(Operation = …)]</c>, if any.</summary>
    public string? ExplicitOperation { get; }

    /// <summary>What the endpoint is, without the method: the route pattern plus host and route-value discriminators.</summary>
    public string Target { get; }

    /// <summary>Where the key is read when it is not the <c>Idempotency-Key</c> header; <see langword="null"/> for the header.</summary>
    public IdempotencyKeySource? KeySource { get; private init; }

    /// <summary>Who sent the request, for endpoints whose callers sign it (webhooks); <see langword="null"/> for the tenant resolver.</summary>
    public IIdempotencySenderVerifier? SenderVerifier { get; private init; }

    /// <summary>Whether the body must be read before the key and the caller: it names the sender, or holds the key.</summary>
    public bool ReadsBodyFirst => SenderVerifier is not null || KeySource is { ReadsBody: true };

    /// <summary>The endpoint's settings (its named policy applied), set by the middleware on the endpoint's first request.</summary>
    public IdempotencyEndpointSettings? Settings { get; set; }

    /// <summary>The plan of an endpoint, or <see langword="null"/> when it is not idempotent (row 1).</summary>
    public static IdempotencyEndpointPlan? For(Endpoint endpoint)
        => Plans.TryGetValue(endpoint, out var plan) ? plan : Plans.GetValue(endpoint, Create);

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

    private static IdempotencyEndpointPlan? Create(Endpoint endpoint)
    {
        var metadata = endpoint.Metadata.GetMetadata<IIdempotencyMetadata>();
        if (metadata is null)
        {
            return null;
        }

        var allowAnonymous = metadata.AllowAnonymous || endpoint.Metadata.GetMetadata<AnonymousIdempotencyScopeMetadata>() is not null;
        var explicitOperation = endpoint.Metadata.GetMetadata<IdempotencyOperationMetadata>()?.Operation ?? metadata.Operation;
        var oneCommit = metadata.OneCommitReservation || endpoint.Metadata.GetMetadata<OneCommitReservationMetadata>() is not null;
        return new IdempotencyEndpointPlan(metadata.KeyRequired, allowAnonymous, oneCommit, explicitOperation, TargetOf(endpoint))
        {
            KeySource = IdempotencyKeySource.For(endpoint, metadata),
            SenderVerifier = endpoint.Metadata.GetMetadata<IIdempotencySenderVerifier>(),
        };
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
