using System.Net;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Oncely.AspNetCore.Tests;

/// <summary>
/// Issue 22: <c>MapIdempotencyConsole</c> serves its embedded files (every file the page refers to exists), tells the
/// page where the operator API is under the request's path base and how to send the credential, and refuses options
/// it cannot use. The page itself is driven in Chromium by <c>test/Oncely.Console.Tests</c>.
/// </summary>
public sealed partial class IdempotencyConsoleTests
{
    [Fact]
    public async Task Page_UnderAPathBaseWithOptions_NamesTheApiUnderThePathBaseAndTheCredentialHeader()
    {
        await using var app = await StartAsync(console => console.MapIdempotencyConsole("/ops/console", options =>
        {
            options.ApiPrefix = "/ops/idempotency/";
            options.CredentialHeader = "X-Api-Key";
            options.CredentialScheme = "";
        }), pathBase: "/shop");
        using var client = app.GetTestClient();

        var html = await client.GetStringAsync("/shop/ops/console/");
        using var bare = await client.GetAsync("/shop/ops/console?x=1");

        Assert.Contains("<meta name=\"oncely-api\" content=\"/shop/ops/idempotency\">", html, StringComparison.Ordinal);
        Assert.Contains("<meta name=\"oncely-credential-header\" content=\"X-Api-Key\">", html, StringComparison.Ordinal);
        Assert.Contains("<meta name=\"oncely-credential-scheme\" content=\"\">", html, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Redirect, bare.StatusCode);
        Assert.Equal("/shop/ops/console/?x=1", bare.Headers.Location!.OriginalString);
    }

    [Fact]
    public async Task Files_EveryFileThePageAndItsModulesReferTo_ServedWithItsTypeAndTheSameHeaders()
    {
        await using var app = await StartAsync(console => console.MapIdempotencyConsole());
        using var client = app.GetTestClient();
        var html = await client.GetStringAsync("/admin/idempotency/console/");
        var script = await client.GetStringAsync("/admin/idempotency/console/console.js");

        var referenced = LocalReference().Matches(html).Select(m => m.Groups["file"].Value)
            .Concat(ModuleImport().Matches(script).Select(m => m.Groups["file"].Value))
            .Distinct()
            .ToList();

        Assert.Equal(["favicon.svg", "console.css", "console.js", "api.js", "chart.js"], referenced);
        foreach (var file in referenced)
        {
            using var answer = await client.GetAsync($"/admin/idempotency/console/{file}");
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            Assert.Equal(
                Path.GetExtension(file) switch { ".js" => "text/javascript", ".css" => "text/css", _ => "image/svg+xml" },
                answer.Content.Headers.ContentType!.MediaType);
            Assert.StartsWith("default-src 'self';", Assert.Single(answer.Headers.GetValues("Content-Security-Policy")), StringComparison.Ordinal);
            Assert.Contains("frame-ancestors 'none'", Assert.Single(answer.Headers.GetValues("Content-Security-Policy")), StringComparison.Ordinal);
            Assert.Equal("nosniff", Assert.Single(answer.Headers.GetValues("X-Content-Type-Options")));
            Assert.NotNull(answer.Headers.ETag);
            Assert.False(answer.Headers.Contains("Set-Cookie"));
        }
    }

    [Fact]
    public async Task Files_UnknownOrOutsideTheConsoleOrNotARead_Refused()
    {
        await using var app = await StartAsync(console => console.MapIdempotencyConsole());
        using var client = app.GetTestClient();

        using var unknown = await client.GetAsync("/admin/idempotency/console/appsettings.json");
        using var page = await client.GetAsync("/admin/idempotency/console/index.html");
        using var climbing = await client.GetAsync("/admin/idempotency/console/..%2Fconsole.js");
        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/admin/idempotency/console/console.js"));
        using var post = await client.PostAsync("/admin/idempotency/console/console.js", null);

        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, page.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, climbing.StatusCode);
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.True(head.Content.Headers.ContentLength > 0);
        Assert.Empty(await head.Content.ReadAsByteArrayAsync());
        Assert.Equal(HttpStatusCode.MethodNotAllowed, post.StatusCode);
    }

    [Theory]
    [InlineData("ops/idempotency", null, null, "ApiPrefix")]
    [InlineData("", null, null, "ApiPrefix")]
    [InlineData("/ops idempotency", null, null, "ApiPrefix")]
    [InlineData(null, "", null, "CredentialHeader")]
    [InlineData(null, "X Api Key", null, "CredentialHeader")]
    [InlineData(null, null, "Bearer token", "CredentialScheme")]
    public async Task Map_UnusableOption_RefusedNamingIt(string? apiPrefix, string? header, string? scheme, string option)
    {
        var error = await Assert.ThrowsAsync<ArgumentException>(() => StartAsync(console => console.MapIdempotencyConsole(configure: options =>
        {
            options.ApiPrefix = apiPrefix ?? options.ApiPrefix;
            options.CredentialHeader = header ?? options.CredentialHeader;
            options.CredentialScheme = scheme ?? options.CredentialScheme;
        })));

        Assert.Contains($"IdempotencyConsoleOptions.{option}", error.Message, StringComparison.Ordinal);
    }

    private static async Task<WebApplication> StartAsync(Action<WebApplication> map, string? pathBase = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { EnvironmentName = "Development" });
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        builder.Services.AddIdempotency();
        var app = builder.Build();
        if (pathBase is not null)
        {
            app.UsePathBase(pathBase);
        }

        app.UseRouting();
        map(app);
        await app.StartAsync();
        return app;
    }

    [GeneratedRegex("(?:src|href)=\"(?<file>[a-z]+\\.[a-z]+)\"")]
    private static partial Regex LocalReference();

    [GeneratedRegex("from '\\./(?<file>[a-z]+\\.js)'")]
    private static partial Regex ModuleImport();
}
