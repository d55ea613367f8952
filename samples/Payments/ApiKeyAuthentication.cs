using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace Payments;

/// <summary>
/// <c>Authorization: Bearer &lt;api key&gt;</c>, with keys mapped to tenants in configuration (<c>Payments:ApiKeys</c>).
/// Keys are compared exactly and in constant time (<see cref="ApiKeys"/>). The principal's <c>NameIdentifier</c> is the tenant, which is also Oncely's default idempotency scope.
/// </summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    ApiKeys apiKeys,
    IProblemDetailsService problems)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? header = Request.Headers.Authorization;
        if (string.IsNullOrEmpty(header))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return Task.FromResult(AuthenticateResult.Fail("The Authorization header is not a Bearer token."));
        }

        var key = header["Bearer ".Length..].Trim();
        var tenant = string.IsNullOrEmpty(key) ? null : apiKeys.FindTenant(key);
        if (string.IsNullOrEmpty(tenant))
        {
            return Task.FromResult(AuthenticateResult.Fail("Unknown API key."));
        }

        var identity = new ClaimsIdentity([new Claim(ClaimTypes.NameIdentifier, tenant)], SchemeName);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var sent = !string.IsNullOrEmpty(Request.Headers.Authorization);
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.WWWAuthenticate = "Bearer";
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = Context,
            ProblemDetails =
            {
                Status = StatusCodes.Status401Unauthorized,
                Type = PaymentProblems.TypeBase + (sent ? "unknown-api-key" : "missing-api-key"),
                Title = sent ? "Unknown API key" : "API key required",
                Detail = sent
                    ? "The API key in the Authorization header is not known. Send 'Authorization: Bearer <api key>' with one of your keys (the sample ships sk_test_tenant_a and sk_test_tenant_b)."
                    : "Send 'Authorization: Bearer <api key>' (the sample ships sk_test_tenant_a and sk_test_tenant_b).",
            },
        });
    }
}
