using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Oncely.MassTransit.Tests.Infrastructure;

/// <summary>Oncely.MassTransit.ConsumerApp running as a child process, consuming the test's queue.</summary>
internal sealed class ConsumerProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ConsumerProcess(Process process) => _process = process;

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
    private static string AppPath
    {
        get
        {
            var testBin = AppContext.BaseDirectory;
            var marker = $"{Path.DirectorySeparatorChar}Oncely.MassTransit.Tests{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}";
            var index = testBin.LastIndexOf(marker, StringComparison.Ordinal);
            Assert.True(index >= 0, $"Unexpected test output folder {testBin}.");
            var path = Path.Combine(testBin[..index], "Oncely.MassTransit.ConsumerApp", "bin", testBin[(index + marker.Length)..].TrimEnd(Path.DirectorySeparatorChar), "Oncely.MassTransit.ConsumerApp.dll");
            Assert.True(File.Exists(path), $"The consumer app was not built: {path} is missing.");
            return path;
        }
    }

    /// <summary>Starts a consumer process and waits until its bus consumes. <paramref name="crashAt"/> arms its SIGKILL hook.</summary>
    public static async Task<ConsumerProcess> StartAsync(RabbitMqServer server, string virtualHost, string queue, string database, string? crashAt = null, TimeSpan? lease = null, int concurrency = 4)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(AppPath);
        start.Environment["ONCELY_RABBIT"] = server.HostAddress(virtualHost).ToString();
        start.Environment["ONCELY_RABBIT_USER"] = RabbitMqServer.User;
        start.Environment["ONCELY_RABBIT_PASSWORD"] = RabbitMqServer.Password;
        start.Environment["ONCELY_QUEUE"] = queue;
        start.Environment["ONCELY_DB"] = database;
        start.Environment["ONCELY_LEASE_MS"] = ((int)(lease ?? TimeSpan.FromSeconds(2)).TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
        start.Environment["ONCELY_CONCURRENCY"] = concurrency.ToString(CultureInfo.InvariantCulture);
        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment.Remove("ONCELY_CRASH_AT");
        if (crashAt is not null)
        {
            start.Environment["ONCELY_CRASH_AT"] = crashAt;
        }

        var child = new ConsumerProcess(Process.Start(start) ?? throw new InvalidOperationException("Could not start the consumer app."));
        child._process.OutputDataReceived += (_, e) => child.Append(e.Data);
        child._process.ErrorDataReceived += (_, e) => child.Append(e.Data);
        child._process.BeginOutputReadLine();
        child._process.BeginErrorReadLine();
        try
        {
            await child._ready.Task.WaitAsync(StartTimeout);
        }
        catch (TimeoutException)
        {
            await child.DisposeAsync();
            throw new TimeoutException($"The consumer app did not start within {StartTimeout}:\n{child.Output}");
        }

        return child;
    }

    /// <summary>Waits for the process to end (it should kill itself at its crash point) and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await _process.WaitForExitAsync(timeout.Token);
        return _process.ExitCode;
    }

    /// <summary>Stops the bus gracefully (in-flight deliveries finish; unacknowledged ones go back to the queue) and waits for the exit.</summary>
    public async Task StopAsync()
    {
        if (_process.HasExited)
        {
            return;
        }

        await _process.StandardInput.WriteLineAsync("stop");
        await _process.StandardInput.FlushAsync();
        Assert.Equal(0, await WaitForExitAsync());
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

        if (line == "ready")
        {
            _ready.TrySetResult();
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }
}
