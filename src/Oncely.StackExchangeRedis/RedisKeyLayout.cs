using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace Oncely.StackExchangeRedis;

/// <summary>
/// Where the store's data lives in Redis. Every key one transition touches carries the same hash tag, so on Redis Cluster
/// it lives in one hash slot and the transition's script runs on one primary:
/// <list type="bullet">
/// <item><c>{prefix}:{{bucket}}:r:{tenant length}:{tenant}:{operation length}:{operation}:{key}</c>: one record (a hash).</item>
/// <item><c>{prefix}:{{bucket}}:fence</c>: the bucket's fencing counter (a string that never expires).</item>
/// <item><c>{prefix}:audit</c>: the capped key-reuse audit stream (a key of its own; only the audit touches it).</item>
/// </list>
/// The bucket is a number from 0 to <see cref="Buckets"/> − 1 derived from the tenant and the key (not the operation), so
/// the records of one tenant's key under every operation share a slot, and an operator's look-up by tenant and key asks
/// one primary. The bucket function is part of the stored format: changing it would strand every live record.
/// </summary>
internal sealed class RedisKeyLayout
{
    /// <summary>How many buckets (hash tags) records are spread over; as many as Redis Cluster has hash slots.</summary>
    public const int Buckets = 16384;

    private const string RecordMarker = ":r:";

    public RedisKeyLayout(string prefix)
    {
        Prefix = prefix;
        Audit = prefix + ":audit";
        RecordPattern = prefix + ":{*}" + RecordMarker + "*";
    }

    /// <summary>The configured key prefix.</summary>
    public string Prefix { get; }

    /// <summary>The key-reuse audit stream.</summary>
    public RedisKey Audit { get; }

    /// <summary>A <c>SCAN MATCH</c> pattern for every record key under this prefix.</summary>
    public RedisValue RecordPattern { get; }

    /// <summary>The bucket of a tenant's key: the first 32 bits of SHA-256 over the tenant's length, the tenant and the key, modulo <see cref="Buckets"/>.</summary>
    public static int Bucket(string tenant, string key)
    {
        var encoding = Encoding.UTF8;
        var length = 4 + encoding.GetMaxByteCount(tenant.Length) + encoding.GetMaxByteCount(key.Length);
        byte[]? rented = null;
        var buffer = length <= 1024 ? stackalloc byte[length] : (rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            BinaryPrimitives.WriteInt32LittleEndian(buffer, tenant.Length);
            var written = 4 + encoding.GetBytes(tenant, buffer[4..]);
            written += encoding.GetBytes(key, buffer[written..]);
            Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
            SHA256.HashData(buffer[..written], hash);
            return (int)(BinaryPrimitives.ReadUInt32BigEndian(hash) % Buckets);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>The record's key.</summary>
    public RedisKey Record(IdempotencyRecordId id) => Record(Bucket(id.Tenant, id.Key), id);

    /// <summary>The fencing counter of the record's bucket (same hash slot as the record).</summary>
    public RedisKey Fence(IdempotencyRecordId id) => Fence(Bucket(id.Tenant, id.Key));

    /// <summary>The fencing counter of <paramref name="bucket"/>.</summary>
    public RedisKey Fence(int bucket) => string.Create(CultureInfo.InvariantCulture, $"{Prefix}:{{{bucket}}}:fence");

    /// <summary>A <c>SCAN MATCH</c> pattern for every record of <paramref name="tenant"/> in <paramref name="bucket"/>, under any operation and key.</summary>
    public RedisValue TenantPattern(int bucket, string tenant)
        => string.Create(CultureInfo.InvariantCulture, $"{Prefix}:{{{bucket}}}{RecordMarker}{tenant.Length}:{EscapeGlob(tenant)}:*");

    /// <summary>A <c>SCAN MATCH</c> pattern for every record of <paramref name="tenant"/>, in any bucket, under any operation and key.</summary>
    public RedisValue TenantPattern(string tenant)
        => string.Create(CultureInfo.InvariantCulture, $"{Prefix}:{{*}}{RecordMarker}{tenant.Length}:{EscapeGlob(tenant)}:*");

    /// <summary>Reads the record id back out of a record key; <see langword="false"/> for any key that is not one.</summary>
    public bool TryParseRecord(string redisKey, out IdempotencyRecordId id)
    {
        id = default;
        var text = redisKey.AsSpan();
        if (!text.StartsWith(Prefix, StringComparison.Ordinal) || text.Length <= Prefix.Length + 2 || text[Prefix.Length] != ':' || text[Prefix.Length + 1] != '{')
        {
            return false;
        }

        text = text[(Prefix.Length + 2)..];
        var close = text.IndexOf('}');
        if (close < 1 || !text[close..].StartsWith("}" + RecordMarker, StringComparison.Ordinal))
        {
            return false;
        }

        text = text[(close + 1 + RecordMarker.Length)..];
        if (!TryTake(ref text, out var tenant) || !TryTake(ref text, out var operation))
        {
            return false;
        }

        id = new IdempotencyRecordId(tenant, operation, text.ToString());
        return true;
    }

    /// <summary>The record's key, with its bucket already computed.</summary>
    public RedisKey Record(int bucket, IdempotencyRecordId id)
        => string.Create(CultureInfo.InvariantCulture, $"{Prefix}:{{{bucket}}}{RecordMarker}{id.Tenant.Length}:{id.Tenant}:{id.Operation.Length}:{id.Operation}:{id.Key}");

    // "<length>:<text>:" at the start of text: the length says where the text ends, whatever characters it holds.
    private static bool TryTake(ref ReadOnlySpan<char> text, out string value)
    {
        value = string.Empty;
        var colon = text.IndexOf(':');
        if (colon < 1 || !int.TryParse(text[..colon], NumberStyles.None, CultureInfo.InvariantCulture, out var length)
            || text.Length < colon + 1 + length + 1 || text[colon + 1 + length] != ':')
        {
            return false;
        }

        value = text.Slice(colon + 1, length).ToString();
        text = text[(colon + 1 + length + 1)..];
        return true;
    }

    private static string EscapeGlob(string text)
    {
        if (text.AsSpan().IndexOfAny("*?[]\\") < 0)
        {
            return text;
        }

        var escaped = new StringBuilder(text.Length + 8);
        foreach (var c in text)
        {
            if (c is '*' or '?' or '[' or ']' or '\\')
            {
                escaped.Append('\\');
            }

            escaped.Append(c);
        }

        return escaped.ToString();
    }
}
