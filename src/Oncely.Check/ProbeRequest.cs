using System.Text;

namespace Oncely.Check;

/// <summary>One request the run will send (or, with <c>--dry-run</c>, print).</summary>
/// <param name="Label">Which step it is (<c>retry #1</c>), for the evidence.</param>
/// <param name="Method">The HTTP method.</param>
/// <param name="Url">The URL: always <c>&lt;url&gt;</c> or <c>--effects-url</c>.</param>
/// <param name="Headers">The header lines, in order; a name may repeat.</param>
/// <param name="Body">The body, or <see langword="null"/>.</param>
internal sealed record ProbeRequest(string Label, HttpMethod Method, Uri Url, IReadOnlyList<HeaderLine> Headers, byte[]? Body)
{
    /// <summary>The request as the terminal and reports show it: credentials masked, long values and bodies abbreviated.</summary>
    public string Describe(CheckSettings settings, int bodyChars = 80)
    {
        var text = new StringBuilder();
        text.Append(Method.Method).Append(' ').Append(Url.PathAndQuery);
        foreach (var header in Headers)
        {
            text.Append(" | ").Append(header.Name).Append(": ").Append(settings.IsSecret(header.Name) ? "<redacted>" : Text.Abbreviate(Text.Visible(header.Value), 48));
        }

        if (Body is { Length: > 0 })
        {
            text.Append(" | body ").Append(Body.Length).Append(" B ").Append(Text.Abbreviate(Text.Visible(Encoding.UTF8.GetString(Body)), bodyChars));
        }

        return text.ToString();
    }
}
