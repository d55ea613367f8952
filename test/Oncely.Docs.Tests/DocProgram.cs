using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace Oncely.Docs.Tests;

/// <summary>
/// A documentation program, compiled from its snippet and started the way a reader starts it: its own process
/// (<c>dotnet exec</c>), its own empty working directory (files such as <c>app.db</c> land there), listening on a free
/// loopback port (<c>--urls http://127.0.0.1:0</c>; the port is read from Kestrel's "Now listening on" line). A program
/// without <c>WebApplication</c> (a worker) is ready at the host's "Application started" line. Extra configuration is
/// passed on the command line, as <c>--Key=value</c>. Disposing kills the process (and its children) and deletes the
/// working directory.
/// </summary>
public sealed partial class DocProgram : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(30);

    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource<Uri?> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly bool _web;

    private DocProgram(Snippet snippet, Process process, string workingDirectory, string assembly)
    {
        Snippet = snippet;
        _process = process;
        WorkingDirectory = workingDirectory;
        Assembly = assembly;
        _web = snippet.Code.Contains("WebApplication.", StringComparison.Ordinal);
    }

    public Snippet Snippet { get; }

    /// <summary>The program's current directory: relative paths (<c>Data Source=app.db</c>) resolve here.</summary>
    public string WorkingDirectory { get; }

    /// <summary>The compiled program.</summary>
    public string Assembly { get; }

    /// <summary>Where it listens: <c>http://127.0.0.1:port/</c>; null for a worker.</summary>
    public Uri? Address { get; private set; }

    /// <summary>What the program wrote to stdout and stderr so far (its logs), for failure messages.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Compiles <paramref name="snippet"/>, starts it with <paramref name="configuration"/> (command-line <c>--Key=value</c>) and waits until it listens.</summary>
    /// <param name="files">Files written to the working directory first (an <c>appsettings.json</c>).</param>
    public static async Task<DocProgram> StartAsync(Snippet snippet, IReadOnlyDictionary<string, string> configuration, IReadOnlyList<(string Name, string Text)> files)
    {
        ArgumentNullException.ThrowIfNull(snippet);
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(files);

        // The program runs with this test project's dependencies (Oncely, JwtBearer, Npgsql, SQLite's native library...):
        // it is emitted beside them and started with this project's deps.json and runtimeconfig.json.
        var bin = AppContext.BaseDirectory;
        var name = "DocProgram_" + NotIdentifier().Replace(snippet.Program ?? snippet.Id, "_");
        var assembly = SnippetCompiler.Emit(snippet, name, bin);

        var workingDirectory = Path.Combine(Path.GetTempPath(), "oncely-docprogram-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(workingDirectory);
        foreach (var (fileName, text) in files)
        {
            await File.WriteAllTextAsync(Path.Combine(workingDirectory, fileName), text);
        }

        var start = new ProcessStartInfo
        {
            FileName = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet",
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])[
            "exec",
            "--runtimeconfig", Path.Combine(bin, "Oncely.Docs.Tests.runtimeconfig.json"),
            "--depsfile", Path.Combine(bin, "Oncely.Docs.Tests.deps.json"),
            assembly,
            "--urls", "http://127.0.0.1:0",
            "--environment", "Development",
            "--applicationName", name])
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in configuration)
        {
            start.ArgumentList.Add($"--{key}={value}");
        }

        // Nothing from the test run's own environment decides where or how the program listens or logs.
        foreach (var variable in start.Environment.Keys.Where(k => k.StartsWith("ASPNETCORE_", StringComparison.Ordinal) || k.StartsWith("DOTNET_ENVIRONMENT", StringComparison.Ordinal) || k.StartsWith("Logging__", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(variable);
        }

        start.Environment["DOTNET_NOLOGO"] = "1";

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var program = new DocProgram(snippet, process, workingDirectory, assembly);
        process.OutputDataReceived += (_, e) => program.Received(e.Data);
        process.ErrorDataReceived += (_, e) => program.Received(e.Data);
        process.Exited += (_, _) => program._listening.TrySetException(new InvalidOperationException($"{snippet.Id} exited with code {SafeExitCode(process)} before it listened."));
        if (!process.Start())
        {
            throw new InvalidOperationException($"Could not start {start.FileName}.");
        }

        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            program.Address = await program._listening.Task.WaitAsync(StartTimeout);
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException)
        {
            await program.DisposeAsync(); // waits for the exit, and for the last lines it wrote
            var output = program.Output;
            var reason = e is TimeoutException ? $"it did not listen within {StartTimeout.TotalSeconds} s" : e.Message;
            throw new InvalidOperationException($"{snippet.Id} (program={snippet.Program}) did not start: {reason}\nIts output:\n{output}", e);
        }

        return program;
    }

    /// <summary>An <see cref="HttpClient"/> on the program's address (each request bounded by 30 s).</summary>
    public HttpClient CreateClient() => new() { BaseAddress = Address ?? throw new InvalidOperationException($"{Snippet.Id} is a worker: it does not listen."), Timeout = TimeSpan.FromSeconds(30) };

    /// <summary>Waits (bounded) until the program has written a line matching <paramref name="pattern"/>; fails naming it.</summary>
    public async Task WaitForOutputAsync(Regex pattern, string what)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (!pattern.IsMatch(Output))
        {
            if (timeout.IsCancellationRequested || _process.HasExited)
            {
                Assert.Fail($"{Snippet.Id} never wrote {what} (waited 60 s{(_process.HasExited ? "; it exited" : string.Empty)}). Its output:\n{Output}");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50));
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            using var stop = new CancellationTokenSource(StopTimeout);
            await _process.WaitForExitAsync(stop.Token);
        }
        catch (InvalidOperationException)
        {
            // Never started or already gone.
        }
        finally
        {
            _process.Dispose();
            TryDelete(() => Directory.Delete(WorkingDirectory, recursive: true));
            TryDelete(() => File.Delete(Assembly));
        }
    }

    private void Received(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.Append(line).Append('\n');
        }

        var listening = Listening().Match(line);
        if (_web && listening.Success)
        {
            _listening.TrySetResult(new Uri(listening.Groups["address"].Value + "/"));
        }
        else if (!_web && line.Contains("Application started.", StringComparison.Ordinal))
        {
            _listening.TrySetResult(null);
        }
    }

    private static string SafeExitCode(Process process)
    {
        try
        {
            return process.ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (InvalidOperationException)
        {
            return "?";
        }
    }

    private static void TryDelete(Action delete)
    {
        try
        {
            delete();
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    [GeneratedRegex(@"Now listening on: (?<address>http://127\.0\.0\.1:\d+)")]
    private static partial Regex Listening();

    [GeneratedRegex("[^A-Za-z0-9]")]
    private static partial Regex NotIdentifier();
}
