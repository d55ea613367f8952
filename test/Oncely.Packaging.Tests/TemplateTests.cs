using System.Net;
using System.Text.RegularExpressions;
using Oncely.Docs.Tests;

namespace Oncely.Packaging.Tests;

/// <summary>
/// <c>dotnet new oncely-api</c> from the packed Oncely.Templates, installed into a private template hive (the machine's
/// template list is not touched): the generated solution builds against the packed packages, its own tests pass, and
/// the app it makes answers a retry once over HTTP, documents itself and reports its health.
/// </summary>
[Collection(PackagesCollection.Name)]
public sealed partial class TemplateTests(PackedFeed feed)
{
    private static readonly TimeSpan CliTimeout = TimeSpan.FromMinutes(5);

    [Fact]
    public async Task OncelyApiTemplate_Instantiated_TestsPassAndRetryIsAnsweredOnce()
    {
        var hive = feed.NewDirectory("template-hive");
        var directory = Path.Combine(feed.Root, "Acme.Payments");
        var install = await Dotnet.RunAsync(feed.Root, CliTimeout, "new", "install", feed.Package("Oncely.Templates"), "--debug:custom-hive", hive);
        Assert.Contains("oncely-api", install, StringComparison.Ordinal);
        await Dotnet.RunAsync(feed.Root, CliTimeout, "new", "oncely-api", "--name", "Acme.Payments", "--output", directory, "--debug:custom-hive", hive);

        var project = await File.ReadAllTextAsync(Path.Combine(directory, "src", "Acme.Payments", "Acme.Payments.csproj"));
        Assert.Contains($"Include=\"Oncely.AspNetCore\" Version=\"{feed.Version}\"", project, StringComparison.Ordinal); // the template's own version
        Assert.DoesNotContain("b7a3c1e2-0000-4000-8000-0000000000aa", project, StringComparison.Ordinal); // a UserSecretsId of its own

        var tests = await Dotnet.RunAsync(directory, CliTimeout, "test", "Acme.Payments.slnx");
        var passed = PassedCount().Match(tests);
        Assert.True(passed.Success && int.Parse(passed.Groups["n"].Value, System.Globalization.CultureInfo.InvariantCulture) >= 4, $"the template's tests: {tests}");
        Assert.DoesNotMatch(FailedCount(), tests);

        var jwts = new UserJwts();
        var dll = Path.Combine(directory, "src", "Acme.Payments", "bin", "Debug", "net10.0", "Acme.Payments.dll");
        await using var app = await RunningApp.StartAsync(Dotnet.Executable, Path.GetDirectoryName(dll)!, [dll], jwts.Configuration);
        using var client = app.CreateClient();
        var token = jwts.Create("alice");

        using var first = await client.SendAsync(Payments.Pay("order-1", """{"amount":250,"currency":"EUR"}""", token));
        using var retry = await client.SendAsync(Payments.Pay("order-1", """{"amount":250,"currency":"EUR"}""", token));
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.Equal("true", Assert.Single(retry.Headers.GetValues("Idempotent-Replayed")));
        Assert.Equal(await first.Content.ReadAsStringAsync(), await retry.Content.ReadAsStringAsync());

        // One payment was made: the Location of both answers names it, and there is only the one.
        using var read = new HttpRequestMessage(HttpMethod.Get, first.Headers.Location!.ToString().TrimStart('/'));
        read.Headers.Authorization = new("Bearer", token);
        using var payment = await client.SendAsync(read);
        Assert.Equal(HttpStatusCode.OK, payment.StatusCode);

        using var reused = await client.SendAsync(Payments.Pay("order-1", """{"amount":999,"currency":"EUR"}""", token));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, reused.StatusCode);
        using var unauthenticated = await client.SendAsync(Payments.Pay("order-2", """{"amount":1,"currency":"EUR"}"""));
        Assert.Equal(HttpStatusCode.Unauthorized, unauthenticated.StatusCode);

        using var health = await client.GetAsync("health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        var openApi = await client.GetStringAsync("openapi/v1.json");
        Assert.Contains("Idempotency-Key", openApi, StringComparison.Ordinal);
        Assert.Contains("/payments", openApi, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"Passed!\s+-\s+Failed:\s+0,\s+Passed:\s+(?<n>\d+)")]
    private static partial Regex PassedCount();

    [GeneratedRegex(@"Failed!\s+-\s+Failed:\s+[1-9]")]
    private static partial Regex FailedCount();
}
