namespace Oncely.Webhooks;

/// <summary>One sender's signing secrets.</summary>
public sealed class StandardWebhookSenderOptions
{
    /// <summary>
    /// The secrets a delivery may be signed with, as the provider shows them (<c>whsec_</c> followed by base64, padded with
    /// <c>=</c> or not; the prefix is optional). A delivery is accepted when any of its signatures matches any of them, so during a rotation list both the
    /// old and the new secret, and remove the old one once the provider has switched. Default: none.
    /// </summary>
    public IList<string> Secrets { get; } = new List<string>();
}
