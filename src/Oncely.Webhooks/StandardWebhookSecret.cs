namespace Oncely.Webhooks;

/// <summary>A Standard Webhooks signing secret: <c>whsec_</c> followed by the base64 of the key bytes (the prefix is optional).</summary>
internal static class StandardWebhookSecret
{
    public const string Prefix = "whsec_";

    public static bool TryDecode(string? secret, out byte[] key)
    {
        key = [];
        if (string.IsNullOrWhiteSpace(secret))
        {
            return false;
        }

        var text = secret.Trim();
        if (text.StartsWith(Prefix, StringComparison.Ordinal))
        {
            text = text[Prefix.Length..];
        }

        var buffer = new byte[(text.Length * 3 / 4) + 3];
        if (!Convert.TryFromBase64String(text, buffer, out var written) || written == 0)
        {
            return false;
        }

        key = buffer[..written];
        return true;
    }
}
