using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Oncely;

/// <summary>
/// Remembers the fingerprints of recent JSON requests by the SHA-256 of their raw bytes, so a byte-identical retry
/// (the usual retry: a client resends exactly what it sent) is fingerprinted without canonicalising its body again.
/// Bounded: when full it starts over. A wrong answer is impossible, a miss only costs the canonicalisation it saves.
/// </summary>
internal sealed class FingerprintCache(int capacity = FingerprintCache.DefaultCapacity)
{
    public const int DefaultCapacity = 4096;

    private readonly ConcurrentDictionary<Key, string> _entries = new();

    public int Count => _entries.Count;

    public bool TryGet(Key key, out string fingerprint) => _entries.TryGetValue(key, out fingerprint!);

    public void Add(Key key, string fingerprint)
    {
        if (_entries.Count >= capacity)
        {
            _entries.Clear();
        }

        _entries.TryAdd(key, fingerprint);
    }

    /// <summary>A SHA-256 digest as four words: cheap to hash and compare.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal readonly record struct Key(ulong A, ulong B, ulong C, ulong D)
    {
        public static Key Of(ReadOnlySpan<byte> data)
        {
            Span<byte> digest = stackalloc byte[32];
            SHA256.HashData(data, digest);
            var words = MemoryMarshal.Cast<byte, ulong>(digest);
            return new Key(words[0], words[1], words[2], words[3]);
        }
    }
}
