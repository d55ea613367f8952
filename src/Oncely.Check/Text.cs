using System.Globalization;
using System.Text;

namespace Oncely.Check;

/// <summary>Small text helpers for evidence lines.</summary>
internal static class Text
{
    public static string Abbreviate(string value, int max)
    {
        if (value.Length <= max)
        {
            return value;
        }

        var cut = char.IsHighSurrogate(value[max - 1]) ? max - 1 : max; // never half a surrogate pair (XML refuses it)
        return string.Concat(value.AsSpan(0, cut), "…(", value.Length.ToString(CultureInfo.InvariantCulture), " chars)");
    }

    /// <summary>Control characters shown as <c>\u0001</c>, so evidence never writes them to a terminal.</summary>
    public static string Visible(string value)
    {
        if (!value.Any(char.IsControl))
        {
            return value;
        }

        var text = new StringBuilder(value.Length + 8);
        foreach (var c in value)
        {
            if (char.IsControl(c))
            {
                text.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
            }
            else
            {
                text.Append(c);
            }
        }

        return text.ToString();
    }

    public static string Invariant(FormattableString value) => value.ToString(CultureInfo.InvariantCulture);
}
