namespace Oncely.AspNetCore;

/// <summary>
/// Settings of the operator console page (<c>MapIdempotencyConsole</c>): where the page finds the operator API and how it
/// sends the credential the operator types. The page's files hold no data; the operator API's authorization is the only
/// gate (see <c>docs/operator-console.md</c>).
/// </summary>
public sealed class IdempotencyConsoleOptions
{
    /// <summary>
    /// The operator API's route prefix, as given to <c>MapIdempotencyAdmin</c> (the request's path base is added in
    /// front). Default: <c>/admin/idempotency</c>.
    /// </summary>
    public string ApiPrefix { get; set; } = "/admin/idempotency";

    /// <summary>
    /// The request header the page puts the operator's credential in. Default: <c>Authorization</c>.
    /// </summary>
    public string CredentialHeader { get; set; } = "Authorization";

    /// <summary>
    /// The scheme written before the credential in <see cref="CredentialHeader"/> (<c>Bearer sk_…</c>); empty sends the
    /// credential alone (for a header such as <c>X-Api-Key</c>). Default: <c>Bearer</c>.
    /// </summary>
    public string CredentialScheme { get; set; } = "Bearer";
}
