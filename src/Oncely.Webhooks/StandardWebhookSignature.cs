using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Oncely.Webhooks;

/// <summary>
/// Computes Standard Webhooks signatures: HMAC-SHA256, keyed with the secret's bytes, over
/// <c>{webhook-id}.{webhook-timestamp}.{body}</c>, written <c>v1,&lt;base64&gt;</c>. For tests and simulated providers that
/// send signed deliveries to an endpoint; receivers verify with <c>AcceptStandardWebhooks(...)</c>.
/// </summary>
public static class StandardWebhookSignature
{
    /// <summary>The signature of one delivery, as it goes in the <c>webhook-signature</c> header.</summary>
    /// <param name="secret">The signing secret: <c>whsec_</c> followed by base64, padded with <c>=</c> or not (the prefix is optional).</param>
    /// <param name="id">The delivery's <c>webhook-id</c>.</param>
    /// <param name="timestamp">The time of signing; it goes in <c>webhook-timestamp</c> as integer Unix seconds.</param>
    /// <param name="body">The exact body bytes that will be sent.</param>
    /// <returns><c>v1,</c> followed by the base64 signature.</returns>
    /// <exception cref="ArgumentException"><paramref name="secret"/> is not base64.</exception>
    public static string Sign(string secret, string id, DateTimeOffset timestamp, ReadOnlySpan<byte> body)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        if (!StandardWebhookSecret.TryDecode(secret, out var key))
        {
            throw new ArgumentException("The secret must be 'whsec_' followed by base64 (padded with '=' or not).", nameof(secret));
        }

        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        Compute(key, id, timestamp.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture), body, mac);
        return "v1," + Convert.ToBase64String(mac);
    }

    /// <summary>HMAC-SHA256 of <c>{id}.{timestamp}.{body}</c>, with the header values exactly as sent.</summary>
    internal static void Compute(byte[] key, string id, string timestamp, ReadOnlySpan<byte> body, Span<byte> destination)
    {
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, key);
        hmac.AppendData(Encoding.UTF8.GetBytes(id));
        hmac.AppendData("."u8);
        hmac.AppendData(Encoding.UTF8.GetBytes(timestamp));
        hmac.AppendData("."u8);
        hmac.AppendData(body);
        hmac.GetHashAndReset(destination);
    }
}
