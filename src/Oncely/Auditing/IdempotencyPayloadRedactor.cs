using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Oncely;

/// <summary>
/// Turns a refused payload (a key reused with a different payload) into text that is safe to keep in the key-reuse
/// audit. It is the default <see cref="IdempotencyMaintenanceOptions.PayloadRedactor"/>, shared by every transport
/// (Oncely.AspNetCore, Oncely.MassTransit).
/// </summary>
/// <remarks>
/// <para>The rules, in order:</para>
/// <list type="bullet">
/// <item>An empty payload gives an empty string.</item>
/// <item>
/// A payload whose content type is not JSON (<see cref="RequestFingerprint.IsJsonContentType"/>), including one without
/// a content type, is never written out: it becomes <c>[N bytes of TYPE; not logged]</c>.
/// </item>
/// <item>A JSON payload that does not parse becomes <c>[N bytes of malformed JSON; not logged]</c>.</item>
/// <item>
/// A JSON payload keeps its shape (compact, member order kept). Every member whose name contains, ignoring case, one
/// of <c>card</c>, <c>cvc</c>, <c>cvv</c>, <c>pan</c>, <c>password</c>, <c>passwd</c>, <c>secret</c>, <c>token</c>,
/// <c>iban</c>, <c>accountnumber</c>, <c>account_number</c>, <c>pin</c>, <c>ssn</c> or <c>authorization</c> has each
/// value under it (its whole subtree: nested members and array items, <c>null</c> included) replaced by the string
/// <c>"***"</c>; member names and the other values are kept as sent.
/// </item>
/// <item>
/// Whatever the member is called, every primary account number (a card number: 13 to 19 digits, a single space or dash
/// between them allowed, that pass the Luhn check; see <see cref="PrimaryAccountNumberRedactor"/>) in a string value, a
/// member name or a number is masked to its last four digits: <c>"ref 4242 4242 4242 4242"</c> becomes
/// <c>"ref **** **** **** 4242"</c>, and the number <c>4242424242424242</c> (or <c>4.242424242424242e15</c>) becomes the
/// string <c>"************4242"</c>. Escaped digits (<c>\u0034</c>) are read as the digits they stand for.
/// </item>
/// <item>The content type quoted in a summary is masked the same way.</item>
/// </list>
/// <para>
/// Names are matched as substrings, so <c>cardNumber</c> and <c>apiToken</c> are masked, and so are harmless names
/// that happen to contain a fragment (<c>shipping</c>, <c>company</c>). Review the result against your own field
/// names; set the host's <c>PayloadRedactor</c> to a function of your own where it does not fit.
/// </para>
/// </remarks>
public static class IdempotencyPayloadRedactor
{
    private const string Mask = "***";

    private static readonly string[] SensitiveNameFragments =
    [
        "card", "cvc", "cvv", "pan", "password", "passwd", "secret", "token", "iban", "accountnumber", "account_number", "pin", "ssn", "authorization",
    ];

    /// <summary>Redacts a payload by the rules above.</summary>
    /// <param name="contentType">The payload's content type (a <c>Content-Type</c> value), or <see langword="null"/> when unknown.</param>
    /// <param name="payload">The payload's bytes.</param>
    /// <returns>The text to keep in the audit; the host caps its length afterwards.</returns>
    public static string Redact(string? contentType, ReadOnlyMemory<byte> payload)
    {
        if (payload.IsEmpty)
        {
            return string.Empty;
        }

        if (!RequestFingerprint.IsJsonContentType(contentType))
        {
            return string.Create(CultureInfo.InvariantCulture, $"[{payload.Length} bytes of {Describe(contentType)}; not logged]");
        }

        try
        {
            using var document = JsonDocument.Parse(payload);
            using var output = new MemoryStream();
            using (var writer = new Utf8JsonWriter(output))
            {
                Write(writer, document.RootElement, masked: false);
            }

            return Encoding.UTF8.GetString(output.GetBuffer(), 0, (int)output.Length);
        }
        catch (JsonException)
        {
            return string.Create(CultureInfo.InvariantCulture, $"[{payload.Length} bytes of malformed JSON; not logged]");
        }
    }

    private static void Write(Utf8JsonWriter writer, JsonElement element, bool masked)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                writer.WriteStartObject();
                foreach (var member in element.EnumerateObject())
                {
                    writer.WritePropertyName(PrimaryAccountNumbers.Mask(member.Name));
                    Write(writer, member.Value, masked || LooksSensitive(member.Name));
                }

                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (var item in element.EnumerateArray())
                {
                    Write(writer, item, masked);
                }

                writer.WriteEndArray();
                break;
            default:
                if (masked)
                {
                    writer.WriteStringValue(Mask);
                }
                else if (element.ValueKind == JsonValueKind.String)
                {
                    var text = element.GetString()!;
                    var kept = PrimaryAccountNumbers.Mask(text);
                    if (ReferenceEquals(kept, text))
                    {
                        element.WriteTo(writer);
                    }
                    else
                    {
                        writer.WriteStringValue(kept);
                    }
                }
                else if (element.ValueKind == JsonValueKind.Number && MaskedNumber(element) is { } number)
                {
                    writer.WriteStringValue(number);
                }
                else
                {
                    element.WriteTo(writer);
                }

                break;
        }
    }

    // A number that spells a card number, as written (4242424242424242) or as an integer written otherwise
    // (4.242424242424242e15, 4242424242424242.0): its masked digits, as a string, since a mask is no number.
    private static string? MaskedNumber(JsonElement element)
    {
        var raw = element.GetRawText();
        var masked = PrimaryAccountNumbers.Mask(raw);
        if (!ReferenceEquals(raw, masked))
        {
            return masked;
        }

        if (element.TryGetDecimal(out var value) && value == decimal.Truncate(value) && Math.Abs(value) >= 1_000_000_000_000m)
        {
            var digits = Math.Abs(value).ToString("0", CultureInfo.InvariantCulture);
            var maskedDigits = PrimaryAccountNumbers.Mask(digits);
            if (!ReferenceEquals(digits, maskedDigits))
            {
                return value < 0 ? "-" + maskedDigits : maskedDigits;
            }
        }

        return null;
    }

    private static string Describe(string? contentType) => contentType is null ? "unknown content" : PrimaryAccountNumbers.Mask(contentType);

    private static bool LooksSensitive(string name)
    {
        foreach (var fragment in SensitiveNameFragments)
        {
            if (name.Contains(fragment, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}
