using System.Buffers;
using System.Globalization;

namespace Oncely;

/// <summary>
/// Finds and masks primary account numbers (card numbers) in text, by value, whatever the text is called. The rule:
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>
/// A <em>run</em> is a longest stretch of decimal digits (any script: ASCII, full-width, Arabic-Indic…) in which two
/// digits are adjacent or apart by exactly one separator: a space, a no-break space, a hyphen or a dash. Anything else (a
/// letter, a dot, two spaces, a quote) ends the run.
/// </item>
/// <item>
/// A run's <em>groups</em> are its stretches of adjacent digits. A <em>candidate</em> is a sequence of whole consecutive
/// groups with 13 to 19 digits in all: <c>4242 4242 4242 4242</c> is one candidate inside <c>qty 2 4242 4242 4242 4242</c>,
/// whose run (17 digits) is another. A number glued to other digits (<c>0424242424242424242</c>) is one group of 19; a
/// 20-digit group holds no candidate.
/// </item>
/// <item>
/// Every candidate that passes the Luhn check is a card number: each of its digits but the last four becomes
/// <c>*</c>; separators and everything else are kept, so the text keeps its length (<c>**** **** **** 4242</c>). PCI DSS
/// allows at most the first six and last four digits to be shown; this shows the last four only.
/// </item>
/// </list>
/// <para>
/// Text with fewer than 13 digits is returned as it is without being copied: the check costs one scan.
/// </para>
/// </remarks>
internal static class PrimaryAccountNumbers
{
    /// <summary>The fewest digits of a card number (ISO/IEC 7812).</summary>
    public const int MinDigits = 13;

    /// <summary>The most digits of a card number (ISO/IEC 7812).</summary>
    public const int MaxDigits = 19;

    /// <summary>What a masked digit becomes.</summary>
    public const char MaskCharacter = '*';

    /// <summary>How many trailing digits of a card number are kept.</summary>
    public const int KeptDigits = 4;

    /// <summary>Masks every card number in <paramref name="text"/>.</summary>
    /// <param name="text">Any text, or <see langword="null"/>.</param>
    /// <returns>The same instance when there is nothing to mask; otherwise a masked copy of the same length.</returns>
    public static string Mask(string text)
    {
        if (string.IsNullOrEmpty(text) || !Contains(text))
        {
            return text;
        }

        return string.Create(text.Length, text, static (destination, source) => Mask(source, destination));
    }

    /// <summary>Masks every card number in <paramref name="text"/>, or returns <see langword="null"/> for <see langword="null"/>.</summary>
    /// <param name="text">Any text.</param>
    /// <returns>See <see cref="Mask(string)"/>.</returns>
    public static string? MaskNullable(string? text) => text is null ? null : Mask(text);

    /// <summary>Whether <paramref name="text"/> holds a card number.</summary>
    /// <param name="text">Any text.</param>
    /// <returns><see langword="true"/> when <see cref="Mask(ReadOnlySpan{char}, Span{char})"/> would change it.</returns>
    public static bool Contains(ReadOnlySpan<char> text) => Scan(text, Span<char>.Empty, mask: false);

    /// <summary>Copies <paramref name="source"/> to <paramref name="destination"/> with every card number masked.</summary>
    /// <param name="source">The text to read.</param>
    /// <param name="destination">Where the masked text goes: at least as long as <paramref name="source"/>, not overlapping it.</param>
    /// <returns><see langword="true"/> when something was masked.</returns>
    public static bool Mask(ReadOnlySpan<char> source, Span<char> destination)
    {
        source.CopyTo(destination);
        return Scan(source, destination, mask: true);
    }

    /// <summary>Whether <paramref name="c"/> is a decimal digit of any script.</summary>
    internal static bool IsDigit(char c) => char.IsAsciiDigit(c) || (c > '\u007f' && CharUnicodeInfo.GetUnicodeCategory(c) == UnicodeCategory.DecimalDigitNumber);

    /// <summary>Whether <paramref name="c"/> may stand between two digits of one card number.</summary>
    internal static bool IsSeparator(char c) => c is ' ' or '-' or '\u00a0' or '\u2007' or '\u202f' or (>= '\u2010' and <= '\u2014') or '\u2212';

    private static int DigitValue(char c) => char.IsAsciiDigit(c) ? c - '0' : (int)CharUnicodeInfo.GetDecimalDigitValue(c);

    private static bool Scan(ReadOnlySpan<char> text, Span<char> destination, bool mask)
    {
        var found = false;
        var i = 0;
        while (i < text.Length)
        {
            if (!IsDigit(text[i]))
            {
                i++;
                continue;
            }

            // One run: digits, each group apart from the next by exactly one separator. Count its digits first; most
            // runs (amounts, dates, ids) are too short to hold a card number and cost nothing more.
            var start = i;
            var digits = 0;
            var groups = 1;
            var end = i;
            while (true)
            {
                while (end < text.Length && IsDigit(text[end]))
                {
                    digits++;
                    end++;
                }

                if (end + 1 < text.Length && IsSeparator(text[end]) && IsDigit(text[end + 1]))
                {
                    groups++;
                    end++;
                    continue;
                }

                break;
            }

            if (digits >= MinDigits && FindInRun(text[start..end], groups, mask ? destination[start..end] : Span<char>.Empty, mask))
            {
                found = true;
                if (!mask)
                {
                    return true;
                }
            }

            i = end;
        }

        return found;
    }

    // Checks every candidate (whole consecutive groups with 13 to 19 digits) of one run; masks the Luhn-valid ones.
    private static bool FindInRun(ReadOnlySpan<char> run, int groupCount, Span<char> destination, bool mask)
    {
        // Each group: where it starts and ends in the run, and how many digits it has.
        Range[]? rented = null;
        var groups = groupCount <= 64 ? stackalloc Range[64] : (rented = ArrayPool<Range>.Shared.Rent(groupCount));
        try
        {
            var g = 0;
            var p = 0;
            while (p < run.Length)
            {
                var groupStart = p;
                while (p < run.Length && IsDigit(run[p]))
                {
                    p++;
                }

                groups[g++] = new Range(groupStart, p);
                p++; // the separator
            }

            var found = false;
            for (var first = 0; first < groupCount; first++)
            {
                var count = 0;
                for (var last = first; last < groupCount; last++)
                {
                    var (offset, length) = groups[last].GetOffsetAndLength(run.Length);
                    count += length;
                    if (count > MaxDigits)
                    {
                        break;
                    }

                    if (count < MinDigits)
                    {
                        continue;
                    }

                    var from = groups[first].Start.Value;
                    var to = offset + length;
                    if (!PassesLuhn(run[from..to]))
                    {
                        continue;
                    }

                    found = true;
                    if (!mask)
                    {
                        return true;
                    }

                    MaskAllButLastDigits(destination[from..to], count);
                }
            }

            return found;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<Range>.Shared.Return(rented);
            }
        }
    }

    // The Luhn check over the digits of a candidate (separators skipped), from the rightmost digit.
    private static bool PassesLuhn(ReadOnlySpan<char> candidate)
    {
        var sum = 0;
        var doubled = false;
        for (var k = candidate.Length - 1; k >= 0; k--)
        {
            var c = candidate[k];
            if (!IsDigit(c))
            {
                continue;
            }

            var d = DigitValue(c);
            if (doubled)
            {
                d *= 2;
                if (d > 9)
                {
                    d -= 9;
                }
            }

            sum += d;
            doubled = !doubled;
        }

        return sum % 10 == 0;
    }

    private static void MaskAllButLastDigits(Span<char> candidate, int digitCount)
    {
        var toMask = digitCount - KeptDigits;
        for (var k = 0; k < candidate.Length && toMask > 0; k++)
        {
            if (IsDigit(candidate[k]))
            {
                candidate[k] = MaskCharacter;
                toMask--;
            }
            else if (candidate[k] == MaskCharacter)
            {
                // Masked already by an overlapping candidate of the same run.
                toMask--;
            }
        }
    }
}
