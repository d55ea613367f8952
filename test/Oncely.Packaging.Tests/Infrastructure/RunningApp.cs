using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Oncely.Packaging.Tests;

/// <summary>
/// An app started as its user starts it (<c>dotnet App.dll</c>, or the native binary), listening on a free loopback port
/// (<c>--urls http://127.0.0.1:0</c>, the port read from Kestrel's "Now listening on" line). Disposing kills it.
/// </summary>
public sealed partial class RunningApp : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);

    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private RunningApp(Process process) => _process = process;

    public Uri Address { get; private set; } = null!;

    /// <summary>From the process start to Kestrel's "Now listening on" line.</summary>
    public TimeSpan StartUp { get; private set; }

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

    /// <summary>The process's resident memory now (VmRSS), in MiB.</summary>
    public double ResidentMemoryMiB
    {
        get
        {
            var line = File.ReadLines($"/proc/{_process.Id}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
            var kib = double.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            return kib / 1024;
        }
    }

    /// <summary>Starts <paramref name="program"/> (<c>dotnet</c> with the dll first in <paramref name="arguments"/>, or a native binary).</summary>
    public static async Task<RunningApp> StartAsync(string program, string workingDirectory, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? configuration = null)
    {
        var all = arguments.Concat(["--urls", "http://127.0.0.1:0", "--environment", "Development"])
            .Concat((configuration ?? new Dictionary<string, string>()).Select(kv => $"--{kv.Key}={kv.Value}"));
        var start = Dotnet.StartInfo(program, workingDirectory, all);
        start.Environment["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information";
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var app = new RunningApp(process);
        process.OutputDataReceived += (_, e) => app.Received(e.Data);
        process.ErrorDataReceived += (_, e) => app.Received(e.Data);
        process.Exited += (_, _) => app._listening.TrySetException(new InvalidOperationException($"{program} exited before it listened."));
        var watch = Stopwatch.StartNew();
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            app.Address = await app._listening.Task.WaitAsync(StartTimeout);
            app.StartUp = watch.Elapsed;
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException)
        {
            await app.DisposeAsync();
            throw new InvalidOperationException($"{program} {string.Join(' ', start.ArgumentList)} did not start: {e.Message}\nIts output:\n{app.Output}", e);
        }

        return app;
    }

    public HttpClient CreateClient() => new() { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(30) };

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await _process.WaitForExitAsync(stop.Token);
        }
        catch (InvalidOperationException)
        {
            // Never started or already gone.
        }
        finally
        {
            _process.Dispose();
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

        var match = Listening().Match(line);
        if (match.Success)
        {
            _listening.TrySetResult(new Uri(match.Groups["address"].Value + "/"));
        }
    }

    [GeneratedRegex(@"Now listening on: (?<address>http://[^\s/]+)")]
    private static partial Regex Listening();
}
