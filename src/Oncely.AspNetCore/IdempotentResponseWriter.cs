using Microsoft.AspNetCore.Http;

namespace Oncely.AspNetCore;

/// <summary>
/// Turns a finished response into the stored answer (status, allow-listed headers, captured bytes) and writes a stored
/// answer back byte for byte on a replay (row 6).
/// </summary>
internal sealed class IdempotentResponseWriter(IdempotencyOptions options)
{
    /// <summary>
    /// Headers that describe the stored bytes themselves. They are always stored with the body, whatever
    /// <see cref="IdempotencyOptions.ReplayedHeaders"/> says: bytes compressed by a middleware inside Oncely are
    /// undecodable without their <c>Content-Encoding</c>. A replay without a body leaves them out.
    /// </summary>
    internal static readonly HashSet<string> BodyHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Content-Type", "Content-Encoding", "Content-Language", "Content-Disposition", "Content-Range", "Vary",
    };

    public IdempotentResponse Snapshot(int status, IHeaderDictionary headers, ReadOnlyMemory<byte> body, bool bodyOmitted)
        => Snapshot(status, SnapshotHeaders(headers), body, bodyOmitted);

    public IdempotentResponse Snapshot(int status, IReadOnlyList<KeyValuePair<string, string>> headers, ReadOnlyMemory<byte> body, bool bodyOmitted)
        => new(status, headers, body, bodyOmitted);

    /// <summary>
    /// The headers to store: the allow-listed ones and those that describe the body, never <c>Set-Cookie</c>. When
    /// <paramref name="bodyHeadersAtFirstWrite"/> is given (<see cref="SnapshotBodyHeaders"/>, taken just before the first
    /// byte left), the body's headers come from it, not from <paramref name="headers"/>: a middleware outside Oncely that
    /// transforms the body on its way out (response compression) sets <c>Content-Encoding</c> and <c>Vary</c> for its own
    /// output as the first bytes reach it, and storing those with the untransformed bytes would make replays undecodable.
    /// </summary>
    public List<KeyValuePair<string, string>> SnapshotHeaders(IHeaderDictionary headers, List<KeyValuePair<string, string>>? bodyHeadersAtFirstWrite = null)
    {
        var kept = bodyHeadersAtFirstWrite ?? new List<KeyValuePair<string, string>>(options.ReplayedHeaders.Count);
        foreach (var (name, values) in headers)
        {
            var describesBody = BodyHeaders.Contains(name);
            if ((describesBody && bodyHeadersAtFirstWrite is not null)
                || !(describesBody || options.ReplayedHeaders.Contains(name))
                || string.Equals(name, "Set-Cookie", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            Add(kept, name, values);
        }

        return kept;
    }

    /// <summary>The headers that describe the body, as they are now (see <see cref="SnapshotHeaders"/>).</summary>
    public List<KeyValuePair<string, string>> SnapshotBodyHeaders(IHeaderDictionary headers)
    {
        var kept = new List<KeyValuePair<string, string>>(options.ReplayedHeaders.Count);
        foreach (var name in BodyHeaders)
        {
            if (headers.TryGetValue(name, out var values))
            {
                Add(kept, name, values);
            }
        }

        return kept;
    }

    private static void Add(List<KeyValuePair<string, string>> kept, string name, Microsoft.Extensions.Primitives.StringValues values)
    {
        foreach (var value in values)
        {
            if (value is not null)
            {
                kept.Add(new(name, value));
            }
        }
    }

    public async Task ReplayAsync(HttpContext context, IdempotentResponse stored)
    {
        var response = context.Response;
        response.StatusCode = stored.StatusCode;
        // By index: the stored list is an IReadOnlyList, whose enumerator would be boxed.
        var headers = stored.Headers;
        for (var i = 0; i < headers.Count; i++)
        {
            var (name, value) = headers[i];
            if (stored.BodyOmitted && BodyHeaders.Contains(name))
            {
                continue;
            }

            response.Headers.Append(name, value);
        }

        response.Headers[IdempotencyOptions.ReplayedHeaderName] = "true";
        if (stored.BodyOmitted)
        {
            response.Headers[IdempotencyOptions.BodyOmittedHeaderName] = "true";
        }

        response.ContentLength = stored.Body.Length;
        if (!stored.Body.IsEmpty && !HttpMethods.IsHead(context.Request.Method))
        {
            await response.Body.WriteAsync(stored.Body, context.RequestAborted).ConfigureAwait(false);
        }
    }
}
