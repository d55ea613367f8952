using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Claims;
using System.Text;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace OncelyApi.Tests;

/// <summary>The API started in memory on a fresh SQLite file, with tokens signed by a key only this test knows.</summary>
public sealed class ApiFactory : WebApplicationFactory<Program>
{
    private readonly SymmetricSecurityKey _key = new(Encoding.UTF8.GetBytes(Guid.NewGuid().ToString("N") + Guid.NewGuid().ToString("N")));
    private readonly string _database = Path.Combine(Path.GetTempPath(), $"oncely-api-tests-{Guid.NewGuid():N}.db");

    public string Token(string user) => new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
    {
        Subject = new ClaimsIdentity([new Claim("sub", user), new Claim("unique_name", user)]),
        Issuer = "oncely-api-tests",
        Audience = "oncely-api",
        Expires = DateTime.UtcNow.AddMinutes(10),
        SigningCredentials = new SigningCredentials(_key, SecurityAlgorithms.HmacSha256),
    });

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("ConnectionStrings:Idempotency", $"Data Source={_database}");
        builder.ConfigureTestServices(services => services.PostConfigure<JwtBearerOptions>(JwtBearerDefaults.AuthenticationScheme, options =>
        {
            options.TokenValidationParameters = new TokenValidationParameters
            {
                ValidIssuer = "oncely-api-tests",
                ValidAudience = "oncely-api",
                IssuerSigningKey = _key,
            };
        }));
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        foreach (var file in new[] { _database, _database + "-wal", _database + "-shm" })
        {
            File.Delete(file);
        }
    }
}

public sealed class PaymentRetryTests(ApiFactory factory) : IClassFixture<ApiFactory>
{
    [Fact]
    public async Task Retry_SameKeyAndBody_ChargesOnceAndReplaysTheFirstAnswer()
    {
        var client = Client("alice");
        var ledger = factory.Services.GetRequiredService<PaymentLedger>();
        var before = ledger.Count;

        var first = await client.SendAsync(Pay("retry-1", 250));
        var retry = await client.SendAsync(Pay("retry-1", 250));

        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.Equal("true", Assert.Single(retry.Headers.GetValues("Idempotent-Replayed")));
        Assert.Equal(first.Headers.Location, retry.Headers.Location);
        Assert.Equal(await first.Content.ReadAsStringAsync(), await retry.Content.ReadAsStringAsync());
        Assert.Equal(before + 1, ledger.Count);
    }

    [Fact]
    public async Task Retry_SameKeyOtherAmount_Is422AndChargesNothing()
    {
        var client = Client("bob");
        Assert.Equal(HttpStatusCode.Created, (await client.SendAsync(Pay("reuse-1", 100))).StatusCode);
        var ledger = factory.Services.GetRequiredService<PaymentLedger>();
        var before = ledger.Count;

        var reused = await client.SendAsync(Pay("reuse-1", 999));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, reused.StatusCode);
        Assert.Equal(before, ledger.Count);
    }

    [Fact]
    public async Task Payment_WithoutKey_Is400()
    {
        var response = await Client("carol").PostAsJsonAsync("/payments", new { amount = 10, currency = "EUR" });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task Payment_WithoutToken_Is401()
    {
        var response = await factory.CreateClient().SendAsync(Pay("anonymous-1", 10));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    private HttpClient Client(string user)
    {
        var client = factory.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", factory.Token(user));
        return client;
    }

    private static HttpRequestMessage Pay(string key, long amount)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/payments") { Content = JsonContent.Create(new { amount, currency = "EUR" }) };
        request.Headers.Add("Idempotency-Key", key);
        return request;
    }
}
