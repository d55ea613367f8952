using System.Buffers;
using System.Text;
using System.Text.Json;

namespace Oncely.EntityFrameworkCore;

/// <summary>Headers as the SQL stores keep them: a JSON array of <c>[name, value]</c> pairs, in order, duplicates kept.</summary>
internal static class HeaderJson
{
    public static string Serialize(IReadOnlyList<KeyValuePair<string, string>> headers)
    {
        var buffer = new ArrayBufferWriter<byte>(64 + (headers.Count * 48));
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            foreach (var (name, value) in headers)
            {
                writer.WriteStartArray();
                writer.WriteStringValue(name);
                writer.WriteStringValue(value);
                writer.WriteEndArray();
            }

            writer.WriteEndArray();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
