using System.Diagnostics;
using Payments.Tests;

namespace Oncely.Check.Tests;

/// <summary>
/// Issue 23, "installs from the local package feed": packs src/Oncely.Check into a temporary feed, installs it with
/// <c>dotnet tool install --tool-path</c>, and runs the installed <c>oncely-check</c>: <c>--help</c>, then against the
/// Payments sample.
/// </summary>
public sealed class ToolPackageTests
{
    [Fact]
    public async Task PackedTool_Installs_ShowsHelp_AndPassesOnTheSample()
    {
        var root = Directory.CreateTempSubdirectory("oncely-check-tool-");
        try
        {
            var feed = Directory.CreateDirectory(Path.Combine(root.FullName, "feed")).FullName;
            var tools = Path.Combine(root.FullName, "tools");
            var project = Path.Combine(RepositoryRoot(), "src", "Oncely.Check", "Oncely.Check.csproj");

            var pack = await RunAsync("dotnet", ["pack", project, "-c", "Release", "-o", feed, "--nologo"]);
            Assert.True(pack.Exit == 0, pack.Output);
            var package = Assert.Single(Directory.GetFiles(feed, "Oncely.Check.*.nupkg"));
            var version = Path.GetFileNameWithoutExtension(package)["Oncely.Check.".Length..];

            // A package folder of its own: the machine-wide cache may hold an older Oncely.Check of the same version.
            var install = await RunAsync("dotnet", ["tool", "install", "--tool-path", tools, "--add-source", feed, "Oncely.Check", "--version", version],
                ("NUGET_PACKAGES", Path.Combine(root.FullName, "packages")));
            Assert.True(install.Exit == 0, install.Output);
            var tool = Path.Combine(tools, OperatingSystem.IsWindows() ? "oncely-check.exe" : "oncely-check");

            var help = await RunAsync(tool, ["--help"]);
            Assert.True(help.Exit == 0, help.Output);
            Assert.Contains("--effects-url", help.Output);
            Assert.Contains("--second-header", help.Output);

            await using var host = await PaymentsHost.StartAsync(kestrel: true, environment: "Development");
            var run = await RunAsync(tool, [.. PaymentsSampleTests.Arguments(host), "--concurrency", "4"]);
            Assert.True(run.Exit == 0, run.Output);
            Assert.Contains("PASSED: 11 passed, 0 warnings, 0 failed, 0 skipped", run.Output);
        }
        finally
        {
            root.Delete(recursive: true);
        }
    }

    private static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Oncely.slnx")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("Oncely.slnx not found above " + AppContext.BaseDirectory);
    }

    private static async Task<(int Exit, string Output)> RunAsync(string file, string[] args, params (string Name, string Value)[] environment)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in 4 minutes.");
        }

        return (process.ExitCode, $"{file} {string.Join(' ', args)} → exit {process.ExitCode}\n{await output}\n{await error}");
    }
}
