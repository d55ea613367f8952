namespace Oncely.Webhooks;

/// <summary>
/// A Standard Webhooks signing secret: <c>whsec_</c> followed by the base64 of the key bytes (the prefix is optional). The
/// base64 may lack its <c>=</c> padding, as the Standard Webhooks reference libraries accept: <c>whsec_QUJD</c>,
/// <c>whsec_QUI=</c> and <c>whsec_QUI</c> are all valid, a length that no padding can complete (<c>whsec_QUJDR</c>) is not.
/// </summary>
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

        // Unpadded base64 (2 or 3 characters in the last group) is completed with the '=' it lacks; one character left over
        // cannot encode a byte, and a text that already ends in '=' keeps its own padding.
        if (!text.EndsWith('='))
        {
            switch (text.Count(c => !char.IsWhiteSpace(c)) % 4)
            {
                case 1:
                    return false;
                case 2:
                    text += "==";
                    break;
                case 3:
                    text += "=";
                    break;
            }
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
