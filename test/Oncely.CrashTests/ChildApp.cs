using System.Diagnostics;
using System.Net;
using System.Text;

namespace Oncely.CrashTests;

/// <summary>Oncely.CrashTests.App running as a child process: <c>dotnet Oncely.CrashTests.App.dll --urls http://127.0.0.1:PORT</c>.</summary>
internal sealed class ChildApp : IAsyncDisposable
{
    /// <summary>What the app writes once Kestrel listens, followed by its address.</summary>
    private const string ListeningMarker = "crash app listening on ";

    /// <summary>A guard against a hang, not a measure: start-up takes about a second on an idle machine.</summary>
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly List<(string Text, TaskCompletionSource<string> Seen)> _awaited = [];
    private Uri? _baseAddress;

    private ChildApp(Process process)
    {
        _process = process;
    }

    public Uri BaseAddress => _baseAddress ?? throw new InvalidOperationException("The crash test app has not reported its address yet.");

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

    /// <summary>The app's build output, next to this test assembly's (same configuration and framework).</summary>
    public static string AppPath
    {
        get
        {
            var testBin = AppContext.BaseDirectory;
            var marker = $"{Path.DirectorySeparatorChar}Oncely.CrashTests{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}";
            var index = testBin.LastIndexOf(marker, StringComparison.Ordinal);
            Assert.True(index >= 0, $"Unexpected test output folder {testBin}.");
            var path = Path.Combine(
                testBin[..index],
                "Oncely.CrashTests.App",
                "bin",
                testBin[(index + marker.Length)..].TrimEnd(Path.DirectorySeparatorChar),
                "Oncely.CrashTests.App.dll");
            Assert.True(File.Exists(path), $"The crash test app was not built: {path} is missing.");
            return path;
        }
    }

    /// <summary>Starts the app and waits until it answers <c>/health</c>. <paramref name="crashAt"/> arms the fault hook; null starts it normally.</summary>
    public static async Task<ChildApp> StartAsync(string store, string connectionString, string? crashAt, TimeSpan lease)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(AppPath);
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add("http://127.0.0.1:0");
        start.Environment["ONCELY_STORE"] = store;
        start.Environment["ONCELY_CONNECTION"] = connectionString;
        start.Environment["ONCELY_LEASE_MS"] = ((int)lease.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        start.Environment["DOTNET_TieredPGO"] = "0";
        start.Environment.Remove("ONCELY_CRASH_AT");
        if (crashAt is not null)
        {
            start.Environment["ONCELY_CRASH_AT"] = crashAt;
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start the crash test app.");
        var app = new ChildApp(process);
        var listening = app.WaitForOutputAsync(ListeningMarker);
        process.OutputDataReceived += (_, e) => app.Append(e.Data);
        process.ErrorDataReceived += (_, e) => app.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        // The app binds port 0 and says which port it got: the address is its own, never another process's.
        var exited = process.WaitForExitAsync();
        if (await Task.WhenAny(listening, exited, Task.Delay(StartTimeout)) != listening)
        {
            var output = app.Output;
            await app.DisposeAsync();
            throw new InvalidOperationException($"The crash test app did not report its address (exited: {exited.IsCompleted}):\n{output}");
        }

        app._baseAddress = new Uri((await listening)[ListeningMarker.Length..].Trim());
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < StartTimeout)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"The crash test app exited during start-up with code {process.ExitCode}:\n{app.Output}");
            }

            try
            {
                using var health = await client.GetAsync(new Uri(app.BaseAddress, "/health"));
                if (health.StatusCode == HttpStatusCode.OK)
                {
                    return app;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }

            await Task.Delay(50);
        }

        await app.DisposeAsync();
        throw new TimeoutException($"The crash test app did not answer /health within {StartTimeout}:\n{app.Output}");
    }

    /// <summary>
    /// Completes with the first line of the app's output (standard output or error) that starts with
    /// <paramref name="text"/>, including a line already written.
    /// </summary>
    public Task<string> WaitForOutputAsync(string text)
    {
        lock (_output)
        {
            foreach (var line in _output.ToString().Split('\n'))
            {
                if (line.StartsWith(text, StringComparison.Ordinal))
                {
                    return Task.FromResult(line.TrimEnd('\r'));
                }
            }

            var seen = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            _awaited.Add((text, seen));
            return seen.Task;
        }
    }

    /// <summary>Kills the app with SIGKILL (what <see cref="Process.Kill()"/> sends on Unix): nothing in it runs again.</summary>
    public void Kill() => _process.Kill();

    /// <summary>Waits for the process to end (it should have been killed) and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _process.WaitForExitAsync(timeout.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
            for (var i = _awaited.Count - 1; i >= 0; i--)
            {
                if (line.StartsWith(_awaited[i].Text, StringComparison.Ordinal))
                {
                    _awaited[i].Seen.TrySetResult(line);
                    _awaited.RemoveAt(i);
                }
            }
        }
    }
}
