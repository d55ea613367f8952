using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Oncely.Docs.Tests;

/// <summary>
/// What <c>dotnet user-jwts create</c> gives a program, minted here: a signing key, issuer and audience handed to the
/// program under <c>Authentication:Schemes:Bearer:*</c> (the keys <c>AddJwtBearer()</c> reads, the ones user-jwts writes
/// to user secrets and appsettings.Development.json), and HS256 tokens signed with that key.
/// </summary>
public sealed class UserJwts
{
    public const string Issuer = "dotnet-user-jwts";
    public const string Audience = "http://localhost:5000";

    private readonly byte[] _key = RandomNumberGenerator.GetBytes(32);

    /// <summary>The configuration a program needs to accept <see cref="Create"/>'s tokens.</summary>
    public IReadOnlyDictionary<string, string> Configuration => new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["Authentication:Schemes:Bearer:ValidIssuer"] = Issuer,
        ["Authentication:Schemes:Bearer:ValidAudiences:0"] = Audience,
        ["Authentication:Schemes:Bearer:SigningKeys:0:Issuer"] = Issuer,
        ["Authentication:Schemes:Bearer:SigningKeys:0:Value"] = Convert.ToBase64String(_key),
    };

    /// <summary>A token for <paramref name="user"/> (the <c>sub</c> claim), with <paramref name="roles"/>, valid for an hour.</summary>
    public string Create(string user, params string[] roles)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var claims = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            ["sub"] = user,
            ["unique_name"] = user,
            ["iss"] = Issuer,
            ["aud"] = Audience,
            ["nbf"] = now - 60,
            ["iat"] = now,
            ["exp"] = now + 3600,
        };
        if (roles.Length > 0)
        {
            claims["role"] = roles.Length == 1 ? roles[0] : roles; // as user-jwts writes one --role, or several
        }

        var header = Base64Url(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string> { ["alg"] = "HS256", ["typ"] = "JWT" }));
        var payload = Base64Url(JsonSerializer.SerializeToUtf8Bytes(claims));
        var signature = Base64Url(HMACSHA256.HashData(_key, Encoding.ASCII.GetBytes($"{header}.{payload}")));
        return $"{header}.{payload}.{signature}";
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

/// <summary>Signs a delivery as a Standard Webhooks sender does (written from the specification, not with Oncely's signer).</summary>
public static class StandardWebhooksSender
{
    /// <summary>A POST of <paramref name="json"/> to <paramref name="path"/> with <c>webhook-id</c>, <c>-timestamp</c> and <c>-signature</c>.</summary>
    public static HttpRequestMessage Delivery(string path, string secret, string id, string json)
    {
        var timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture);
        var key = Convert.FromBase64String(secret["whsec_".Length..]);
        var signature = Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{id}.{timestamp}.{json}")));
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        request.Headers.Add("webhook-id", id);
        request.Headers.Add("webhook-timestamp", timestamp);
        request.Headers.Add("webhook-signature", "v1," + signature);
        return request;
    }
}
