using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace Payments;

/// <summary>
/// <c>Authorization: Bearer &lt;api key&gt;</c>, with keys mapped to tenants in configuration (<c>Payments:ApiKeys</c>).
/// Keys are compared exactly and in constant time (<see cref="ApiKeys"/>). The principal's <c>NameIdentifier</c> is the tenant, which is also Oncely's default idempotency scope.
/// An operator key (<c>Payments:OperatorApiKeys</c>) authenticates an operator instead: a name and the role
/// <see cref="OperatorRole"/>, no tenant, so it opens the operator API and nothing else.
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

    /// <summary>The role of operator API keys, required by the <c>operator</c> authorization policy.</summary>
    public const string OperatorRole = "operator";

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
        var @operator = string.IsNullOrEmpty(key) || !string.IsNullOrEmpty(tenant) ? null : apiKeys.FindOperator(key);
        if (string.IsNullOrEmpty(tenant) && string.IsNullOrEmpty(@operator))
        {
            return Task.FromResult(AuthenticateResult.Fail("Unknown API key."));
        }

        var identity = string.IsNullOrEmpty(tenant)
            ? new ClaimsIdentity([new Claim(ClaimTypes.Name, @operator!), new Claim(ClaimTypes.Role, OperatorRole)], SchemeName)
            : new ClaimsIdentity([new Claim(ClaimTypes.NameIdentifier, tenant)], SchemeName);
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

    // A known key on an endpoint it does not open: an operator key on the tenant API, a tenant key on the operator API.
    protected override async Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        var isOperator = Context.User.IsInRole(OperatorRole);
        Response.StatusCode = StatusCodes.Status403Forbidden;
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = Context,
            ProblemDetails =
            {
                Status = StatusCodes.Status403Forbidden,
                Type = PaymentProblems.TypeBase + "forbidden",
                Title = "Not allowed for this API key",
                Detail = isOperator
                    ? "This is an operator API key: it opens the operator API (/admin/idempotency) and nothing else. Send a tenant's API key (Payments:ApiKeys)."
                    : "This API key belongs to a tenant, and this endpoint is for operators only: send an operator API key (Payments:OperatorApiKeys, the sample ships sk_test_operator).",
            },
        });
    }
}
