using System.Buffers;
using System.Text;
using System.Text.Json;

namespace Oncely;

/// <summary>
/// The text form SQL stores keep replayed headers in: a JSON array of <c>[name, value]</c> pairs, in order, duplicates
/// kept (for example <c>[["Content-Type","application/json"],["Location","/payments/1"]]</c>). Shared by every store and
/// by the EF Core mapping, so a record written by one can be read by another. Internal: a third-party store keeps
/// headers in whatever form it likes.
/// </summary>
internal static class StoredHeaders
{
    private const int MaxKeptBuffer = 16 * 1024;

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_buffer;

    [ThreadStatic]
    private static Utf8JsonWriter? t_writer;

    /// <summary>Writes the headers in the stored form (<c>[]</c> when there are none).</summary>
    /// <param name="headers">The headers, in order.</param>
    /// <returns>The JSON text.</returns>
    public static string Serialize(IReadOnlyList<KeyValuePair<string, string>> headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        if (headers.Count == 0)
        {
            return "[]";
        }

        // One buffer and one writer per thread, reset for each call: a completion allocates the text and nothing else.
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(256);
        buffer.ResetWrittenCount();
        var writer = t_writer;
        if (writer is null)
        {
            writer = t_writer = new Utf8JsonWriter(buffer);
        }
        else
        {
            writer.Reset(buffer);
        }

        writer.WriteStartArray();
        foreach (var (name, value) in headers)
        {
            writer.WriteStartArray();
            writer.WriteStringValue(name);
            writer.WriteStringValue(value);
            writer.WriteEndArray();
        }

        writer.WriteEndArray();
        writer.Flush();
        var text = Encoding.UTF8.GetString(buffer.WrittenSpan);
        if (buffer.Capacity > MaxKeptBuffer)
        {
            // An unusually large set of headers: its buffer is not kept for the thread's lifetime.
            t_buffer = null;
            t_writer = null;
        }

        return text;
    }

    /// <summary>Reads headers back from the stored form; <see langword="null"/> or empty text means none.</summary>
    /// <param name="json">The JSON text.</param>
    /// <returns>The headers, in order.</returns>
    public static IReadOnlyList<KeyValuePair<string, string>> Deserialize(string? json)
    {
        if (string.IsNullOrEmpty(json) || json == "[]")
        {
            return [];
        }

        using var document = JsonDocument.Parse(json);
        var headers = new List<KeyValuePair<string, string>>(document.RootElement.GetArrayLength());
        foreach (var pair in document.RootElement.EnumerateArray())
        {
            headers.Add(new(pair[0].GetString() ?? string.Empty, pair[1].GetString() ?? string.Empty));
        }

        return headers;
    }
}
