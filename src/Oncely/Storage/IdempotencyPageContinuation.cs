using System.Buffers;
using System.Buffers.Text;
using System.Text.Json;

namespace Oncely;

/// <summary>
/// The opaque continuations of <see cref="IIdempotencyStoreAdministration"/>'s pages, shared by Oncely's own stores
/// (a third-party store writes its own; the conformance suite only needs it to refuse a foreign one): a keyset
/// position (where the previous page ended), never an offset, so a page is stable while records are added or removed
/// before it. The text is URL-safe (base64url) and carries a version, so a continuation from another kind of listing or
/// a damaged one is refused with an <see cref="ArgumentException"/> rather than misread.
/// </summary>
internal static class IdempotencyPageContinuation
{
    /// <summary>The longest continuation accepted, in characters: a key, a tenant and an operation fit with room to spare.</summary>
    public const int MaxLength = 8192;

    private const string RecordVersion = "r1";
    private const string AuditVersion = "a1";

    /// <summary>
    /// A page of records from a query that fetched one more than <paramref name="limit"/>: the extra record, when there is
    /// one, only says that another page exists, and is cut before the continuation is made from the page's last record.
    /// </summary>
    /// <param name="fetched">At most <paramref name="limit"/> + 1 records, newest first; cut in place.</param>
    /// <param name="limit">The page size asked for.</param>
    /// <returns>The page, with a continuation when more records follow.</returns>
    public static IdempotencyRecordPage RecordPage(List<IdempotencyRecordSummary> fetched, int limit)
    {
        ArgumentNullException.ThrowIfNull(fetched);
        if (fetched.Count <= limit)
        {
            return new IdempotencyRecordPage(fetched, null);
        }

        fetched.RemoveRange(limit, fetched.Count - limit);
        return new IdempotencyRecordPage(fetched, ForRecord(fetched[^1]));
    }

    /// <summary>
    /// A page of audit entries from a query that fetched one more than <paramref name="limit"/>, as
    /// <see cref="RecordPage"/> does for records; <paramref name="positions"/> holds each fetched entry's position.
    /// </summary>
    /// <param name="fetched">At most <paramref name="limit"/> + 1 entries, newest first; cut in place.</param>
    /// <param name="positions">The store's position of each fetched entry, in the same order.</param>
    /// <param name="limit">The page size asked for.</param>
    /// <returns>The page, with a continuation when more entries follow.</returns>
    public static KeyReuseAuditPage AuditPage(List<KeyReuseAuditEntry> fetched, IReadOnlyList<long> positions, int limit)
    {
        ArgumentNullException.ThrowIfNull(fetched);
        ArgumentNullException.ThrowIfNull(positions);
        if (fetched.Count <= limit)
        {
            return new KeyReuseAuditPage(fetched, null);
        }

        fetched.RemoveRange(limit, fetched.Count - limit);
        return new KeyReuseAuditPage(fetched, ForAudit(positions[limit - 1]));
    }

    /// <summary>
    /// The continuation after <paramref name="last"/>, the last record of a page ordered newest first (by creation time,
    /// then by tenant, operation and key, all descending).
    /// </summary>
    /// <param name="last">The last record of the page.</param>
    /// <returns>A URL-safe, opaque text.</returns>
    public static string ForRecord(IdempotencyRecordSummary last)
    {
        ArgumentNullException.ThrowIfNull(last);
        return ForRecord(last.CreatedAt, last.Id);
    }

    /// <summary>The continuation after the record <paramref name="id"/> created at <paramref name="createdAt"/>.</summary>
    /// <param name="createdAt">The record's creation time.</param>
    /// <param name="id">The record's id.</param>
    /// <returns>A URL-safe, opaque text.</returns>
    public static string ForRecord(DateTimeOffset createdAt, IdempotencyRecordId id)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            writer.WriteStringValue(RecordVersion);
            writer.WriteNumberValue(createdAt.UtcTicks);
            writer.WriteStringValue(id.Tenant);
            writer.WriteStringValue(id.Operation);
            writer.WriteStringValue(id.Key);
            writer.WriteEndArray();
        }

        return Base64Url.EncodeToString(buffer.WrittenSpan);
    }

    /// <summary>Reads a continuation made by <see cref="ForRecord(DateTimeOffset, IdempotencyRecordId)"/>.</summary>
    /// <param name="continuation">The text a previous page returned.</param>
    /// <returns>The creation time (UTC) and id of the last record of the previous page.</returns>
    /// <exception cref="ArgumentException">The text is not a record continuation.</exception>
    public static (DateTimeOffset CreatedAt, IdempotencyRecordId Id) ParseRecord(string continuation)
    {
        using var document = Parse(continuation, RecordVersion, 5);
        var items = document.RootElement;
        try
        {
            var ticks = items[1].GetInt64();
            if (ticks < DateTimeOffset.MinValue.UtcTicks || ticks > DateTimeOffset.MaxValue.UtcTicks)
            {
                throw Invalid();
            }

            var tenant = items[2].GetString();
            var operation = items[3].GetString();
            var key = items[4].GetString();
            if (tenant is null || operation is null || key is null)
            {
                throw Invalid();
            }

            return (new DateTimeOffset(ticks, TimeSpan.Zero), new IdempotencyRecordId(tenant, operation, key));
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw Invalid(e);
        }
    }

    /// <summary>
    /// The continuation after the audit entry at <paramref name="position"/>, a store's own increasing sequence (a row id):
    /// the next page holds the entries before it.
    /// </summary>
    /// <param name="position">The last entry's position.</param>
    /// <returns>A URL-safe, opaque text.</returns>
    public static string ForAudit(long position)
    {
        var buffer = new ArrayBufferWriter<byte>(32);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            writer.WriteStringValue(AuditVersion);
            writer.WriteNumberValue(position);
            writer.WriteEndArray();
        }

        return Base64Url.EncodeToString(buffer.WrittenSpan);
    }

    /// <summary>Reads a continuation made by <see cref="ForAudit"/>.</summary>
    /// <param name="continuation">The text a previous page returned.</param>
    /// <returns>The position of the last entry of the previous page.</returns>
    /// <exception cref="ArgumentException">The text is not an audit continuation.</exception>
    public static long ParseAudit(string continuation)
    {
        using var document = Parse(continuation, AuditVersion, 2);
        try
        {
            return document.RootElement[1].GetInt64();
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw Invalid(e);
        }
    }

    private static JsonDocument Parse(string continuation, string version, int length)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        if (continuation.Length is 0 or > MaxLength)
        {
            throw Invalid();
        }

        byte[] bytes;
        try
        {
            bytes = Base64Url.DecodeFromChars(continuation);
        }
        catch (FormatException e)
        {
            throw Invalid(e);
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw Invalid(e);
        }

        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Array || root.GetArrayLength() != length
            || root[0].ValueKind != JsonValueKind.String || root[0].GetString() != version)
        {
            document.Dispose();
            throw Invalid();
        }

        return document;
    }

    private static ArgumentException Invalid(Exception? inner = null)
        => new("The continuation is not one this listing returned: pass the 'continuation' of the previous page exactly as it was given, or leave it out for the first page.", "continuation", inner);
}
