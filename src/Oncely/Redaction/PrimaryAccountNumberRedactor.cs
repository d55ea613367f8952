using Microsoft.Extensions.Compliance.Redaction;

namespace Oncely;

/// <summary>
/// A <see cref="Redactor"/> that masks primary account numbers (card numbers) wherever they appear in a value and keeps
/// the rest: every run of 13 to 19 digits (a single space, no-break space, hyphen or dash may separate them) that passes
/// the Luhn check keeps its last four digits, the others become <c>*</c> (<c>ref **** **** **** 4242</c>). The value keeps
/// its length. It is Oncely's default redactor for every classification of <see cref="OncelyTaxonomy"/>, and an
/// application can use it for its own classifications:
/// <c>services.AddRedaction(r =&gt; r.SetRedactor&lt;PrimaryAccountNumberRedactor&gt;(MyTaxonomy.FreeText))</c>.
/// </summary>
/// <remarks>
/// A digit run is split only at its separators: inside <c>qty 2 4242 4242 4242 4242</c> both <c>2 4242 4242 4242 4242</c>
/// and <c>4242 4242 4242 4242</c> are checked, but a number glued to other digits is read as one number. Numbers that
/// fail the Luhn check are left alone. See docs/data-protection.md.
/// </remarks>
public sealed class PrimaryAccountNumberRedactor : Redactor
{
    /// <summary>The one instance Oncely uses; the redactor keeps no state.</summary>
    public static PrimaryAccountNumberRedactor Instance { get; } = new();

    /// <summary>Whether <paramref name="value"/> holds a primary account number this redactor would mask.</summary>
    /// <param name="value">Any text.</param>
    /// <returns><see langword="true"/> when a Luhn-valid run of 13 to 19 digits is found.</returns>
    public static bool ContainsPrimaryAccountNumber(ReadOnlySpan<char> value) => PrimaryAccountNumbers.Contains(value);

    /// <inheritdoc />
    /// <remarks>Always the input's length: digits are masked one for one.</remarks>
    public override int GetRedactedLength(ReadOnlySpan<char> input) => input.Length;

    /// <inheritdoc />
    public override int Redact(ReadOnlySpan<char> source, Span<char> destination)
    {
        if (destination.Length < source.Length)
        {
            throw new ArgumentException($"The destination holds {destination.Length} characters; {source.Length} are needed.", nameof(destination));
        }

        _ = PrimaryAccountNumbers.Mask(source, destination);
        return source.Length;
    }

    /// <inheritdoc />
    /// <remarks>Returns <paramref name="source"/> itself, without copying it, when it holds no card number.</remarks>
    public override string Redact(string? source) => source is null ? string.Empty : PrimaryAccountNumbers.Mask(source);
}
