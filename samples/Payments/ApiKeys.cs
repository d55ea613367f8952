using System.Security.Cryptography;
using System.Text;

namespace Payments;

/// <summary>
/// The API keys of <c>Payments:ApiKeys</c> (key → tenant), matched exactly and in constant time.
/// </summary>
/// <remarks>
/// Configuration keys are case-insensitive, so looking a presented key up in the section would accept
/// <c>SK_TEST_TENANT_A</c> for <c>sk_test_tenant_a</c>. Instead the SHA-256 of every configured key is compared with the
/// SHA-256 of the presented one by <see cref="CryptographicOperations.FixedTimeEquals"/>, visiting every entry, so
/// neither the case, the length nor the position of a match changes the time taken. Keys are read once, at start.
/// </remarks>
public sealed class ApiKeys
{
    private readonly (byte[] Hash, string Tenant)[] _entries;

    public ApiKeys(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        _entries = [.. configuration.GetSection("Payments:ApiKeys").GetChildren()
            .Where(entry => !string.IsNullOrEmpty(entry.Key) && !string.IsNullOrEmpty(entry.Value))
            .Select(entry => (Hash(entry.Key), entry.Value!))];
    }

    /// <summary>The tenant of <paramref name="key"/>, or <see langword="null"/> when no configured key equals it byte for byte.</summary>
    public string? FindTenant(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var presented = Hash(key);
        string? tenant = null;
        foreach (var (hash, owner) in _entries)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, presented))
            {
                tenant = owner;
            }
        }

        return tenant;
    }

    private static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
