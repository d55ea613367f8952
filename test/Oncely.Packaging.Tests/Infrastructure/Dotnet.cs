using System.Diagnostics;
using System.Text;

namespace Oncely.Packaging.Tests;

/// <summary>
/// Runs the .NET CLI (or a script) as a user would in a shell, outside this test's own MSBuild environment, and fails
/// with the command's whole output when it exits non-zero or runs past its time.
/// </summary>
public static class Dotnet
{
    public static string Executable => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";

    /// <summary>Runs <c>dotnet <paramref name="arguments"/></c> in <paramref name="directory"/>; returns stdout and stderr.</summary>
    public static Task<string> RunAsync(string directory, TimeSpan timeout, params string[] arguments) => RunProgramAsync(Executable, directory, timeout, arguments);

    /// <summary>Runs <paramref name="program"/> with <paramref name="arguments"/>; returns stdout and stderr.</summary>
    public static async Task<string> RunProgramAsync(string program, string directory, TimeSpan timeout, params string[] arguments)
    {
        var start = StartInfo(program, directory, arguments);
        var output = new StringBuilder();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Append(output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(output, e.Data);
        var watch = Stopwatch.StartNew();
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"'{Describe(program, arguments)}' in {directory} ran past {timeout.TotalSeconds} s. Output:\n{Text(output)}");
        }

        process.WaitForExit(); // the last output lines
        var text = Text(output);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"'{Describe(program, arguments)}' in {directory} exited with {process.ExitCode} after {watch.Elapsed.TotalSeconds:0} s. Output:\n{text}");
        }

        return text;
    }

    /// <summary>A start for a child process: the user's environment less this test run's MSBuild and test-host variables.</summary>
    public static ProcessStartInfo StartInfo(string program, string directory, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo
        {
            FileName = program,
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var key in start.Environment.Keys.Where(Inherited).ToList())
        {
            start.Environment.Remove(key);
        }

        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1"; // no build servers left running after the test
        start.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        start.Environment["UseSharedCompilation"] = "false";
        return start;
    }

    // What `dotnet test` sets for its own build and test host, which a user's shell does not have.
    private static bool Inherited(string key) =>
        key.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)
        || key.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase)
        || key.StartsWith("TESTINGPLATFORM", StringComparison.OrdinalIgnoreCase)
        || key.StartsWith("ASPNETCORE_", StringComparison.Ordinal)
        || key.StartsWith("DOTNET_ENVIRONMENT", StringComparison.Ordinal)
        || key is "DOTNET_HOST_PATH" or "Configuration" or "Platform" or "TargetFramework" or "RuntimeIdentifier";

    private static string Describe(string program, string[] arguments) => Path.GetFileName(program) + " " + string.Join(' ', arguments);

    private static void Append(StringBuilder output, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (output)
        {
            output.Append(line).Append('\n');
        }
    }

    private static string Text(StringBuilder output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }
}
