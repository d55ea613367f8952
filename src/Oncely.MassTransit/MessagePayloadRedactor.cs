using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Oncely.MassTransit;

/// <summary>
/// The default <see cref="IdempotentConsumerOptions.PayloadRedactor"/>: a JSON payload keeps its shape, with the value of
/// every member whose name looks sensitive replaced by <c>"***"</c> (whole subtrees included); anything else is
/// summarised by its length, never written out.
/// </summary>
internal static class MessagePayloadRedactor
{
    private const string Mask = "***";

    private static readonly string[] SensitiveNameParts =
    [
        "card", "cvc", "cvv", "pan", "password", "passwd", "secret", "token", "iban", "accountnumber", "account_number", "pin", "ssn", "authorization",
    ];

    public static string Redact(string? contentType, ReadOnlyMemory<byte> payload)
    {
        if (payload.IsEmpty)
        {
            return string.Empty;
        }

        if (!RequestFingerprint.IsJsonContentType(contentType))
        {
            return string.Create(CultureInfo.InvariantCulture, $"[{payload.Length} bytes of {contentType ?? "unknown content"}; not logged]");
        }

        try
        {
            using var document = JsonDocument.Parse(payload);
            using var output = new MemoryStream();
            using (var writer = new Utf8JsonWriter(output))
            {
                Copy(writer, document.RootElement, masked: false);
            }

            return Encoding.UTF8.GetString(output.GetBuffer(), 0, (int)output.Length);
        }
        catch (JsonException)
        {
            return string.Create(CultureInfo.InvariantCulture, $"[{payload.Length} bytes of malformed JSON; not logged]");
        }
    }

    private static void Copy(Utf8JsonWriter writer, JsonElement element, bool masked)
    {
        if (element.ValueKind == JsonValueKind.Object)
        {
            writer.WriteStartObject();
            foreach (var member in element.EnumerateObject())
            {
                writer.WritePropertyName(member.Name);
                Copy(writer, member.Value, masked || LooksSensitive(member.Name));
            }

            writer.WriteEndObject();
        }
        else if (element.ValueKind == JsonValueKind.Array)
        {
            writer.WriteStartArray();
            foreach (var item in element.EnumerateArray())
            {
                Copy(writer, item, masked);
            }

            writer.WriteEndArray();
        }
        else if (masked && element.ValueKind is not JsonValueKind.Null)
        {
            writer.WriteStringValue(Mask);
        }
        else
        {
            element.WriteTo(writer);
        }
    }

    private static bool LooksSensitive(string name)
    {
        foreach (var part in SensitiveNameParts)
        {
            if (name.Contains(part, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}
