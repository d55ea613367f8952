using System.IO.Compression;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Oncely.Docs.Tests;

namespace Oncely.Packaging.Tests;

/// <summary>
/// The path every user takes: a fresh <c>dotnet new web</c> app outside the repository, <c>dotnet add package</c> from
/// the packed feed, README's "Use it" program pasted in (read from README.md now, so the README is what is tested),
/// built, run, and called over HTTP.
/// </summary>
[Collection(PackagesCollection.Name)]
public sealed partial class ReadmeAppFromPackagesTests(PackedFeed feed)
{
    private static readonly TimeSpan CliTimeout = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task ReadmeUseIt_BuiltFromPackedPackages_AnswersReplay409And422()
    {
        var directory = feed.NewDirectory("readme-app");
        await Dotnet.RunAsync(directory, CliTimeout, "new", "web", "--name", "ReadmeApp", "--output", directory, "--framework", "net10.0");
        await Dotnet.RunAsync(directory, CliTimeout, "add", "package", "Oncely.AspNetCore", "--version", feed.Version);
        await Dotnet.RunAsync(directory, CliTimeout, "add", "package", "Oncely.Sqlite", "--version", feed.Version);
        await Dotnet.RunAsync(directory, CliTimeout, "add", "package", "Microsoft.AspNetCore.Authentication.JwtBearer", "--version", "10.0.15");
        await File.WriteAllTextAsync(Path.Combine(directory, "Program.cs"), ReadmeProgram(feed.RepositoryRoot));

        var project = XDocument.Load(Path.Combine(directory, "ReadmeApp.csproj"));
        var references = project.Descendants("PackageReference").ToDictionary(r => (string)r.Attribute("Include")!, r => (string?)r.Attribute("Version"));
        Assert.Equal(feed.Version, references["Oncely.AspNetCore"]);
        Assert.Equal(feed.Version, references["Oncely.Sqlite"]);

        await Dotnet.RunAsync(directory, CliTimeout, "build", "-c", "Release");
        var assets = await File.ReadAllTextAsync(Path.Combine(directory, "obj", "project.assets.json"));
        Assert.Contains($"\"Oncely/{feed.Version}\"", assets, StringComparison.Ordinal); // Oncely came as a package, not a project

        var jwts = new UserJwts();
        await using var app = await RunningApp.StartAsync(Dotnet.Executable, directory, [Path.Combine(directory, "bin", "Release", "net10.0", "ReadmeApp.dll")], jwts.Configuration);
        using var client = app.CreateClient();
        await Payments.AssertIdempotentAsync(client, jwts.Create("alice"));

        using var anonymous = await client.SendAsync(Payments.Pay("order-anonymous", """{"amount":1,"currency":"EUR"}"""));
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.True(File.Exists(Path.Combine(directory, "app.db")), "the records are in the SQLite file README's program names");
    }

    [Fact]
    public void EveryPackage_CarriesReadmeLicenceSymbolsAndOneVersion()
    {
        Assert.Contains("Oncely", feed.PackageIds);
        Assert.Contains("Oncely.AspNetCore", feed.PackageIds);
        Assert.Contains("Oncely.Sqlite", feed.PackageIds);
        Assert.Contains("Oncely.Templates", feed.PackageIds);
        var libraries = Directory.GetDirectories(Path.Combine(feed.RepositoryRoot, "src")).Select(Path.GetFileName).ToList();
        foreach (var library in libraries)
        {
            Assert.Contains(library, feed.PackageIds); // every project under src/ is packed
        }

        foreach (var id in feed.PackageIds)
        {
            using var package = ZipFile.OpenRead(feed.Package(id));
            var nuspec = XDocument.Load(package.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open());
            var metadata = nuspec.Root!.Elements().Single(e => e.Name.LocalName == "metadata");
            string? Get(string name) => metadata.Elements().SingleOrDefault(e => e.Name.LocalName == name)?.Value;

            Assert.Equal(feed.Version, Get("version"));
            Assert.Equal("README.md", Get("readme"));
            Assert.NotNull(package.GetEntry("README.md"));
            Assert.NotNull(package.GetEntry("LICENSE"));
            Assert.Equal("MIT", Get("license"));
            Assert.False(string.IsNullOrWhiteSpace(Get("tags")), $"{id} has tags");
            Assert.StartsWith("https://", Get("projectUrl"), StringComparison.Ordinal);
            var readme = new StreamReader(package.GetEntry("README.md")!.Open()).ReadToEnd();
            Assert.Contains("https://", readme, StringComparison.Ordinal); // a link to the docs that works on a package page

            // Dependencies on other Oncely packages name this same version.
            foreach (var dependency in metadata.Descendants().Where(e => e.Name.LocalName == "dependency" && ((string)e.Attribute("id")!).StartsWith("Oncely", StringComparison.Ordinal)))
            {
                Assert.Equal(feed.Version, (string)dependency.Attribute("version")!);
            }

            if (id != "Oncely.Templates" && package.Entries.Any(e => e.FullName.StartsWith("lib/", StringComparison.Ordinal)))
            {
                var repository = metadata.Elements().Single(e => e.Name.LocalName == "repository");
                Assert.False(string.IsNullOrEmpty((string?)repository.Attribute("commit")), $"{id}: SourceLink records the commit");
                Assert.True(File.Exists(feed.Package(id, symbols: true)), $"{id} has a .snupkg");
                using var symbols = ZipFile.OpenRead(feed.Package(id, symbols: true));
                Assert.Contains(symbols.Entries, e => e.FullName.EndsWith(".pdb", StringComparison.Ordinal));
            }
        }
    }

    /// <summary>README.md's "Use it" program, as the reader copies it.</summary>
    public static string ReadmeProgram(string repositoryRoot)
    {
        var readme = File.ReadAllText(Path.Combine(repositoryRoot, "README.md"));
        var match = UseItProgram().Match(readme);
        Assert.True(match.Success, "README.md has no <!-- snippet: program=readme-use-it --> csharp block");
        return match.Groups["code"].Value;
    }

    [GeneratedRegex(@"<!-- snippet: program=readme-use-it -->\s*```csharp\n(?<code>.*?)```", RegexOptions.Singleline)]
    private static partial Regex UseItProgram();
}
