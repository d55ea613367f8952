using System.Security.Cryptography;
using System.Text;

namespace Payments;

/// <summary>
/// The API keys of <c>Payments:ApiKeys</c> (key → tenant) and <c>Payments:OperatorApiKeys</c> (key → operator name),
/// matched exactly and in constant time.
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
    private readonly (byte[] Hash, string Operator)[] _operators;

    public ApiKeys(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        _entries = Read(configuration, "Payments:ApiKeys");
        _operators = Read(configuration, "Payments:OperatorApiKeys");
    }

    /// <summary>The tenant of <paramref name="key"/>, or <see langword="null"/> when no configured key equals it byte for byte.</summary>
    public string? FindTenant(string key) => Find(_entries, key);

    /// <summary>The operator of <paramref name="key"/> (an operator API key, never a tenant's), or <see langword="null"/>.</summary>
    public string? FindOperator(string key) => Find(_operators, key);

    private static (byte[] Hash, string Owner)[] Read(IConfiguration configuration, string section)
        => [.. configuration.GetSection(section).GetChildren()
            .Where(entry => !string.IsNullOrEmpty(entry.Key) && !string.IsNullOrEmpty(entry.Value))
            .Select(entry => (Hash(entry.Key), entry.Value!))];

    private static string? Find((byte[] Hash, string Owner)[] entries, string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var presented = Hash(key);
        string? owner = null;
        foreach (var (hash, name) in entries)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, presented))
            {
                owner = name;
            }
        }

        return owner;
    }

    private static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
