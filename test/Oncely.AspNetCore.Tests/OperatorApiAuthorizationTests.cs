using System.Net;
using System.Net.Http.Headers;
using System.Security.Claims;
using System.Text;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Oncely.AspNetCore.Tests;

/// <summary>
/// Issue 17, item 6: the operator API is for operators, not for any signed-in customer. The host refuses to start unless
/// the operator API requires a named policy or a role that asks for more than an authenticated user, or the application
/// opts in on purpose (<c>AllowAnyAuthenticatedCallerAsOperator()</c>); on a real pipeline with real JWTs a customer's
/// token is refused on every operator endpoint and an operator's gets through.
/// </summary>
public sealed class OperatorApiAuthorizationTests
{
    private const string Admin = "/admin/idempotency";
    private const string OperatorRole = "operator";
    private const string Issuer = "https://issuer.test";
    private const string Audience = "payments-api";
    private static readonly SymmetricSecurityKey SigningKey = new(Encoding.UTF8.GetBytes("a test signing key of at least 256 bits for HS256!!"));

    /// <summary>Every way of securing the operator API that still lets any authenticated caller in.</summary>
    public static TheoryData<string> AnyAuthenticatedCallerSetups =>
    [
        "bare RequireAuthorization()",
        "named policy that only requires an authenticated user",
        "policy object that only requires an authenticated user",
        "authentication scheme only",
        "default policy every customer satisfies",
        "fallback policy only",
        "named policy that is not registered",
    ];

    /// <summary>Every way of securing the operator API that only operators (or a deliberate opt-in) satisfy.</summary>
    public static TheoryData<string> OperatorOnlySetups =>
    [
        "named policy with a role",
        "role on an AuthorizeAttribute",
        "policy object with a claim",
        "bare RequireAuthorization() plus a named policy",
        "bare RequireAuthorization() plus the explicit opt-in",
    ];

    private static void Secure(string setup, IServiceCollection services)
    {
        var authorization = services.AddAuthorizationBuilder();
        switch (setup)
        {
            case "named policy that only requires an authenticated user":
                authorization.AddPolicy("signed-in", p => p.RequireAuthenticatedUser());
                break;
            case "default policy every customer satisfies":
                authorization.SetDefaultPolicy(new AuthorizationPolicyBuilder().RequireAuthenticatedUser().RequireClaim(ClaimTypes.NameIdentifier).Build());
                break;
            case "fallback policy only":
                authorization.SetFallbackPolicy(new AuthorizationPolicyBuilder().RequireRole(OperatorRole).Build());
                break;
            case "named policy with a role":
            case "bare RequireAuthorization() plus a named policy":
                authorization.AddPolicy("operator", p => p.RequireRole(OperatorRole));
                break;
        }
    }

    private static void Secure(string setup, RouteGroupBuilder admin)
    {
        switch (setup)
        {
            case "bare RequireAuthorization()":
            case "default policy every customer satisfies":
                admin.RequireAuthorization();
                break;
            case "named policy that only requires an authenticated user":
                admin.RequireAuthorization("signed-in");
                break;
            case "policy object that only requires an authenticated user":
                admin.RequireAuthorization(p => p.RequireAuthenticatedUser());
                break;
            case "authentication scheme only":
                admin.RequireAuthorization(new AuthorizeAttribute { AuthenticationSchemes = JwtBearerDefaults.AuthenticationScheme });
                break;
            case "fallback policy only":
                break;
            case "named policy that is not registered":
                admin.RequireAuthorization("operatr");
                break;
            case "named policy with a role":
                admin.RequireAuthorization("operator");
                break;
            case "role on an AuthorizeAttribute":
                admin.RequireAuthorization(new AuthorizeAttribute { Roles = OperatorRole });
                break;
            case "policy object with a claim":
                admin.RequireAuthorization(p => p.RequireClaim("role", OperatorRole));
                break;
            case "bare RequireAuthorization() plus a named policy":
                admin.RequireAuthorization().RequireAuthorization("operator");
                break;
            case "bare RequireAuthorization() plus the explicit opt-in":
                admin.RequireAuthorization().AllowAnyAuthenticatedCallerAsOperator();
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(setup), setup, "unknown setup");
        }
    }

    private static Task<PipelineApp> StartAsync(string setup) => PipelineApp.StartAsync(
        pipeline: (web, self) =>
        {
            web.UseAuthentication();
            web.UseAuthorization();
            web.UseIdempotency();
            web.MapPost("/payments", () => Results.Created("/payments/1", new { call = self.Count("payments") })).RequireAuthorization().RequireIdempotencyKey();
            Secure(setup, web.MapIdempotencyAdmin(Admin));
        },
        services: s =>
        {
            s.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer(o =>
            {
                o.MapInboundClaims = false;
                o.TokenValidationParameters = new TokenValidationParameters
                {
                    ValidIssuer = Issuer,
                    ValidAudience = Audience,
                    IssuerSigningKey = SigningKey,
                    NameClaimType = "sub",
                    RoleClaimType = "role",
                };
            });
            Secure(setup, s);
        });

    private static string Token(string subject, params string[] roles)
    {
        var claims = new Dictionary<string, object> { ["sub"] = subject };
        if (roles.Length > 0)
        {
            claims["role"] = roles;
        }

        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = Issuer,
            Audience = Audience,
            Claims = claims,
            Expires = DateTime.UtcNow.AddHours(1),
            SigningCredentials = new SigningCredentials(SigningKey, SecurityAlgorithms.HmacSha256),
        });
    }

    /// <summary>The operator API's endpoints as the route table has them: a new endpoint cannot be missed.</summary>
    private static List<(string Method, string Path)> OperatorEndpoints(PipelineApp app)
    {
        var endpoints = app.Services.GetRequiredService<EndpointDataSource>().Endpoints
            .OfType<RouteEndpoint>()
            .Where(e => e.Metadata.GetMetadata<IdempotencyAdminEndpointMetadata>() is not null)
            .SelectMany(e => e.Metadata.GetMetadata<IHttpMethodMetadata>()!.HttpMethods.Select(m => (Method: m, Path: "/" + e.RoutePattern.RawText!.TrimStart('/'))))
            .ToList();
        Assert.True(endpoints.Count >= 3, $"expected the operator API's endpoints in the route table, found {endpoints.Count}");
        Assert.All(endpoints, e => Assert.StartsWith(Admin + "/", e.Path, StringComparison.Ordinal));
        return endpoints;
    }

    private static Task<HttpResponseMessage> SendAsync(PipelineApp app, string method, string path, string? token)
    {
        var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (method == HttpMethods.Post)
        {
            request.Content = new StringContent("{}", Encoding.UTF8, "application/json");
        }

        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return app.Client.SendAsync(request);
    }

    [Theory]
    [MemberData(nameof(AnyAuthenticatedCallerSetups))]
    public async Task Start_OperatorApiAnyAuthenticatedCallerSatisfies_FailsSayingToRequireANamedPolicyOrRole(string setup)
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => StartAsync(setup));

        Assert.Contains("RequireAuthorization(\"operator\")", error.Message, StringComparison.Ordinal);
        Assert.Contains("operator API", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_BareRequireAuthorization_FailsNamingTheEndpointsTheReasonAndTheOptIn()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => StartAsync("bare RequireAuthorization()"));

        Assert.Contains("lets any authenticated caller in", error.Message, StringComparison.Ordinal);
        Assert.Contains("Oncely operator API: release a record", error.Message, StringComparison.Ordinal);
        Assert.Contains("uses the default policy", error.Message, StringComparison.Ordinal);
        Assert.Contains("Roles = \"operator\"", error.Message, StringComparison.Ordinal);
        Assert.Contains(".AllowAnyAuthenticatedCallerAsOperator()", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("named policy that only requires an authenticated user", "the policy 'signed-in' only requires an authenticated user")]
    [InlineData("named policy that is not registered", "the policy 'operatr' is not registered")]
    public async Task Start_NamedPolicyThatAdmitsAnyone_FailsNamingThePolicy(string setup, string reason)
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => StartAsync(setup));

        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(OperatorOnlySetups))]
    public async Task Start_OperatorApiRequiresAnOperatorOrExplicitOptIn_Starts(string setup)
    {
        await using var app = await StartAsync(setup);

        Assert.Equal(HttpStatusCode.OK, (await SendAsync(app, HttpMethods.Get, $"{Admin}/records", Token("ops-1", OperatorRole))).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(app, HttpMethods.Get, $"{Admin}/records", token: null)).StatusCode);
    }

    [Theory]
    [InlineData("named policy with a role")]
    [InlineData("role on an AuthorizeAttribute")]
    [InlineData("policy object with a claim")]
    [InlineData("bare RequireAuthorization() plus a named policy")]
    public async Task EveryOperatorEndpoint_CustomersTokenGets403_OperatorsTokenGetsThrough(string setup)
    {
        await using var app = await StartAsync(setup);
        var customer = Token("customer-1");
        var @operator = Token("ops-1", OperatorRole);

        // The customer's token is valid: it pays.
        var payment = new HttpRequestMessage(HttpMethod.Post, "/payments");
        payment.Headers.Authorization = new AuthenticationHeaderValue("Bearer", customer);
        payment.Headers.Add("Idempotency-Key", "k-1");
        Assert.Equal(HttpStatusCode.Created, (await app.Client.SendAsync(payment)).StatusCode);

        foreach (var (method, path) in OperatorEndpoints(app))
        {
            var refused = await SendAsync(app, method, path, customer);
            var anonymous = await SendAsync(app, method, path, token: null);
            var admitted = await SendAsync(app, method, path, @operator);

            Assert.True(refused.StatusCode == HttpStatusCode.Forbidden, $"{method} {path} with a customer's token: {(int)refused.StatusCode}");
            Assert.True(anonymous.StatusCode == HttpStatusCode.Unauthorized, $"{method} {path} without a token: {(int)anonymous.StatusCode}");
            Assert.True(
                admitted.StatusCode is not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden),
                $"{method} {path} with an operator's token: {(int)admitted.StatusCode}");
            if (method == HttpMethods.Get && !path.EndsWith("/records/detail", StringComparison.Ordinal))
            {
                Assert.Equal(HttpStatusCode.OK, admitted.StatusCode);
            }
            else
            {
                // The handler itself answered: the body '{}' (or the detail's empty query) lacks the record's fields.
                Assert.Equal(HttpStatusCode.BadRequest, admitted.StatusCode);
                Assert.Equal("application/problem+json", admitted.Content.Headers.ContentType?.MediaType);
            }
        }

        Assert.Equal(1, app.CallsTo("payments"));
    }

    [Fact]
    public async Task ExplicitOptIn_AnyAuthenticatedCallerIsAnOperator_AnonymousIsNot()
    {
        await using var app = await StartAsync("bare RequireAuthorization() plus the explicit opt-in");

        foreach (var (method, path) in OperatorEndpoints(app))
        {
            Assert.True((await SendAsync(app, method, path, Token("customer-1"))).StatusCode is not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden), $"{method} {path}");
            Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(app, method, path, token: null)).StatusCode);
        }
    }
}
