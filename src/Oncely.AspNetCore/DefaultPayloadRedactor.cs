using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Oncely.AspNetCore;

internal static class DefaultPayloadRedactor
{
    private const string Mask = "***";

    private static readonly string[] SensitiveFragments =
    [
        "card", "cvc", "cvv", "pan", "password", "passwd", "secret", "token", "iban", "accountnumber", "account_number", "pin", "ssn", "authorization",
    ];

    public static string Redact(string? contentType, ReadOnlyMemory<byte> body)
    {
        if (body.IsEmpty)
        {
            return string.Empty;
        }

        if (!RequestFingerprint.IsJsonContentType(contentType))
        {
            return string.Create(CultureInfo.InvariantCulture, $"[{body.Length} bytes of {contentType ?? "unknown content"}; not logged]");
        }

        try
        {
            using var document = JsonDocument.Parse(body);
            using var buffer = new MemoryStream();
            using (var writer = new Utf8JsonWriter(buffer))
            {
                Write(writer, document.RootElement, sensitive: false);
            }

            return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
        }
        catch (JsonException)
        {
            return string.Create(CultureInfo.InvariantCulture, $"[{body.Length} bytes of malformed JSON; not logged]");
        }
    }

    private static void Write(Utf8JsonWriter writer, JsonElement element, bool sensitive)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                writer.WriteStartObject();
                foreach (var property in element.EnumerateObject())
                {
                    writer.WritePropertyName(property.Name);
                    Write(writer, property.Value, sensitive || IsSensitive(property.Name));
                }

                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (var item in element.EnumerateArray())
                {
                    Write(writer, item, sensitive);
                }

                writer.WriteEndArray();
                break;
            default:
                if (sensitive)
                {
                    writer.WriteStringValue(Mask);
                }
                else
                {
                    element.WriteTo(writer);
                }

                break;
        }
    }

    private static bool IsSensitive(string name)
    {
        foreach (var fragment in SensitiveFragments)
        {
            if (name.Contains(fragment, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}
