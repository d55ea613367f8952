using System.Text.RegularExpressions;

namespace Oncely.Packaging.Tests;

/// <summary>
/// Every package of the repository, packed once per test run by <c>scripts/pack.sh</c> into a local feed in a temporary
/// folder outside the repository, under a version no earlier run used (<c>0.3.0-preview.1.t&lt;random&gt;</c>): the
/// machine's NuGet cache can never hand a test a stale package of the same version, and another test run on the same
/// machine never shares a version. The folder has a <c>nuget.config</c> (this feed and nuget.org) that every app made
/// below it restores with, and no <c>Directory.Build.props</c> or <c>Directory.Packages.props</c> above it. Disposing
/// deletes the folder and the run's versions from the NuGet cache.
/// </summary>
public sealed partial class PackedFeed : IAsyncLifetime
{
    private static readonly TimeSpan PackTimeout = TimeSpan.FromMinutes(6);

    public PackedFeed()
    {
        RepositoryRoot = FindRepositoryRoot();
        Root = Path.Combine(Path.GetTempPath(), "oncely-packaging-" + Guid.NewGuid().ToString("N")[..10]);
        Feed = Path.Combine(Root, "feed");
        VersionSuffix = "preview.1.t" + Guid.NewGuid().ToString("N")[..8];
        Version = ReadVersionPrefix(RepositoryRoot) + "-" + VersionSuffix;
    }

    /// <summary>The clone this test runs from (where Oncely.slnx is).</summary>
    public string RepositoryRoot { get; }

    /// <summary>The temporary folder: the feed, its nuget.config, and the apps the tests make.</summary>
    public string Root { get; }

    /// <summary>The local feed: every .nupkg and .snupkg.</summary>
    public string Feed { get; }

    public string VersionSuffix { get; }

    /// <summary>The version every package was packed with.</summary>
    public string Version { get; }

    /// <summary>The package ids packed (from the .nupkg names).</summary>
    public IReadOnlyList<string> PackageIds { get; private set; } = [];

    /// <summary>What pack.sh printed.</summary>
    public string PackOutput { get; private set; } = string.Empty;

    /// <summary>The build configuration this test project (and so the packed assemblies) was built in.</summary>
    public static string Configuration => AppContext.BaseDirectory.Contains("/bin/Debug/", StringComparison.Ordinal) ? "Debug" : "Release";

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Feed);
        await File.WriteAllTextAsync(Path.Combine(Root, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="oncely-local" value="{Feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" protocolVersion="3" />
              </packageSources>
            </configuration>
            """);

        // The projects were built by this test project's build (it references them); pack what that build produced.
        PackOutput = await Dotnet.RunProgramAsync(
            "bash",
            RepositoryRoot,
            PackTimeout,
            Path.Combine(RepositoryRoot, "scripts", "pack.sh"), "-o", Feed, "-c", Configuration, "--no-build", $"-p:VersionSuffix={VersionSuffix}");

        PackageIds = Directory.GetFiles(Feed, "*.nupkg")
            .Select(Path.GetFileName)
            .Select(name => name![..^($".{Version}.nupkg".Length)])
            .Order(StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>A new empty folder below <see cref="Root"/> (so the feed's nuget.config applies).</summary>
    public string NewDirectory(string name)
    {
        var directory = Path.Combine(Root, name);
        Directory.CreateDirectory(directory);
        return directory;
    }

    /// <summary>The path of a packed file.</summary>
    public string Package(string id, bool symbols = false) => Path.Combine(Feed, $"{id}.{Version}.{(symbols ? "snupkg" : "nupkg")}");

    public Task DisposeAsync()
    {
        TryDelete(Root);
        var cache = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        foreach (var id in PackageIds)
        {
            var package = Path.Combine(cache, id.ToLowerInvariant());
            TryDelete(Path.Combine(package, Version.ToLowerInvariant()));
            if (Directory.Exists(package) && !Directory.EnumerateFileSystemEntries(package).Any())
            {
                TryDelete(package); // the package had no other version in the cache
            }
        }

        return Task.CompletedTask;
    }

    private static void TryDelete(string directory)
    {
        try
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
        catch (IOException)
        {
            // A file still held open: the temporary folder is left to the OS.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Oncely.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No Oncely.slnx above {AppContext.BaseDirectory}.");
    }

    private static string ReadVersionPrefix(string root)
    {
        var props = File.ReadAllText(Path.Combine(root, "Directory.Build.props"));
        var match = VersionPrefixElement().Match(props);
        return match.Success ? match.Groups[1].Value : throw new InvalidOperationException("Directory.Build.props has no <VersionPrefix>.");
    }

    [GeneratedRegex(@"<VersionPrefix>([^<]+)</VersionPrefix>")]
    private static partial Regex VersionPrefixElement();
}

[CollectionDefinition(Name)]
public sealed class PackagesCollection : ICollectionFixture<PackedFeed>
{
    public const string Name = "packed feed";
}
