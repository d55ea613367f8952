using System.Buffers;
using System.Text;
using System.Text.Json;

namespace Oncely.PostgreSql;

/// <summary>
/// Stores replay headers as a jsonb array of <c>[name, value]</c> pairs: order and repeated names survive
/// (an object would lose both), and the column stays readable in <c>psql</c>.
/// </summary>
internal static class HeaderJson
{
    public static string Serialize(IReadOnlyList<KeyValuePair<string, string>> headers)
    {
        var buffer = new ArrayBufferWriter<byte>(64 + (headers.Count * 48));
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            foreach (var header in headers)
            {
                writer.WriteStartArray();
                writer.WriteStringValue(header.Key);
                writer.WriteStringValue(header.Value);
                writer.WriteEndArray();
            }

            writer.WriteEndArray();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    public static IReadOnlyList<KeyValuePair<string, string>> Deserialize(string? json)
    {
        if (string.IsNullOrEmpty(json))
        {
            return [];
        }

        using var document = JsonDocument.Parse(json);
        var headers = new List<KeyValuePair<string, string>>(document.RootElement.GetArrayLength());
        foreach (var pair in document.RootElement.EnumerateArray())
        {
            headers.Add(new KeyValuePair<string, string>(pair[0].GetString() ?? string.Empty, pair[1].GetString() ?? string.Empty));
        }

        return headers;
    }
}
