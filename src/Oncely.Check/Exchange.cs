using System.Net;
using System.Text;

namespace Oncely.Check;

/// <summary>A request sent and what came back (or why nothing did).</summary>
internal sealed class Exchange
{
    public required ProbeRequest Request { get; init; }

    /// <summary>The status code; <see langword="null"/> when no answer came (<see cref="Error"/> says why).</summary>
    public int? Status { get; init; }

    /// <summary>Response and content headers, each name once with its values joined by <c>, </c>.</summary>
    public IReadOnlyDictionary<string, string> Headers { get; init; } = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);

    public byte[] Body { get; init; } = [];

    public string? Error { get; init; }

    public TimeSpan Elapsed { get; init; }

    public bool Answered => Status is not null;

    public bool IsSuccess => Status is >= 200 and < 300;

    public bool IsClientError => Status is >= 400 and < 500;

    public bool IsServerError => Status is >= 500;

    public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;

    /// <summary>The media type of the answer, without parameters, lower case.</summary>
    public string? MediaType => Header("Content-Type")?.Split(';')[0].Trim().ToLowerInvariant();

    public bool IsProblemJson => MediaType == "application/problem+json";

    /// <summary>The replay marker header the answer carries (<c>Idempotent-Replayed: true</c> and its spellings), if any.</summary>
    public (string Name, string Value)? ReplayMarker
    {
        get
        {
            foreach (var name in ReplayMarkers.Names)
            {
                if (Header(name) is { } value)
                {
                    return (name, value);
                }
            }

            return null;
        }
    }

    /// <summary>Whether the answer says it is a replay (a marker header whose value is <c>true</c>, <c>1</c> or <c>yes</c>).</summary>
    public bool SaysReplayed => ReplayMarker is { } marker && ReplayMarkers.IsTrue(marker.Value);

    public string StatusText => Status is { } status
        ? Text.Invariant($"{status} {ReasonPhrase(status)}")
        : "no answer (" + Error + ")";

    /// <summary>One line: the request, then the answer's status, its key headers and the start of its body.</summary>
    public string Describe(CheckSettings settings)
    {
        var text = new StringBuilder();
        text.Append(Request.Label).Append(": ").Append(Request.Describe(settings, 40)).Append(" → ").Append(StatusText);
        if (!Answered)
        {
            return text.ToString();
        }

        foreach (var name in (string[])["Location", "ETag", "Content-Type", "Retry-After"])
        {
            if (Header(name) is { } value)
            {
                text.Append(" | ").Append(name).Append(": ").Append(Text.Abbreviate(Text.Visible(value), 60));
            }
        }

        if (ReplayMarker is { } marker)
        {
            text.Append(" | ").Append(marker.Name).Append(": ").Append(Text.Abbreviate(marker.Value, 20));
        }

        text.Append(" | body ").Append(Body.Length).Append(" B");
        if (Body.Length > 0)
        {
            text.Append(' ').Append(Text.Abbreviate(Text.Visible(Encoding.UTF8.GetString(Body)), 100));
        }

        return text.ToString();
    }

    private static string ReasonPhrase(int status) => status switch
    {
        // HttpStatusCode has two names for these; say the RFC 9110 one.
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        _ => Enum.IsDefined(typeof(HttpStatusCode), status) ? Spaced(((HttpStatusCode)status).ToString()) : string.Empty,
    };

    private static string Spaced(string name)
    {
        var text = new StringBuilder(name.Length + 4);
        for (var i = 0; i < name.Length; i++)
        {
            if (i > 0 && char.IsUpper(name[i]) && !char.IsUpper(name[i - 1]))
            {
                text.Append(' ');
            }

            text.Append(name[i]);
        }

        return text.ToString();
    }
}

/// <summary>The replay marker headers servers use: Oncely's and Stripe's <c>Idempotent-Replayed</c>, and the usual variants.</summary>
internal static class ReplayMarkers
{
    public static readonly string[] Names = ["Idempotent-Replayed", "Idempotency-Replayed", "X-Idempotent-Replayed", "X-Idempotency-Replayed", "Idempotency-Replay"];

    public static bool IsTrue(string value) => value.Trim().ToLowerInvariant() is "true" or "1" or "yes" or "?1";
}
