using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Oncely.StackExchangeRedis.Tests.Infrastructure;

/// <summary>
/// A throw-away Redis server started from the machine's own <c>redis-server</c> (no Docker): a child process on a free
/// loopback port with a directory of its own, stopped and deleted at the end. It can be stopped and started again on the
/// same port and directory (an outage).
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    private const string Missing =
        "redis-server (and redis-cli) were not found on PATH or in /usr/bin. Install the Debian package redis-server: ./test.sh does it (scripts/ensure-redis.sh).";

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(20);
    private static readonly Lock PortGate = new();
    private static readonly HashSet<int> HandedOut = [];

    private readonly string[] _arguments;
    private Process? _process;

    private RedisServer(int port, string directory, string[] arguments)
    {
        Port = port;
        Directory = directory;
        _arguments = arguments;
    }

    /// <summary>The loopback port the server listens on.</summary>
    public int Port { get; }

    /// <summary>The server's own directory (data, log, cluster configuration).</summary>
    public string Directory { get; }

    /// <summary><c>127.0.0.1:port</c>.</summary>
    public string EndPoint => $"127.0.0.1:{Port}";

    /// <summary>Whether the server process is running.</summary>
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>Finds <c>redis-server</c>, or throws saying how to install it (tests never skip).</summary>
    public static string Binary(string name = "redis-server")
    {
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).Append("/usr/bin"))
        {
            var candidate = Path.Combine(directory, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException(Missing);
    }

    /// <summary>
    /// Starts a server. <paramref name="persistent"/>: append-only file on, so a stop and start keeps the data (the outage
    /// tests); otherwise nothing is ever written to disk. <paramref name="extra"/> goes to <c>redis-server</c> as it is.
    /// </summary>
    public static async Task<RedisServer> StartNewAsync(bool persistent = false, params string[] extra)
    {
        var binary = Binary();
        var directory = Path.Combine(Path.GetTempPath(), "oncely-redis-" + Guid.NewGuid().ToString("N")[..12]);
        System.IO.Directory.CreateDirectory(directory);
        var port = FreePort(extra.Contains("--cluster-enabled"));
        string[] arguments =
        [
            "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--bind", "127.0.0.1",
            "--dir", directory,
            "--logfile", Path.Combine(directory, "redis.log"),
            "--daemonize", "no",
            "--protected-mode", "no",
            "--save", "",
            "--appendonly", persistent ? "yes" : "no",
            "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction",
            .. extra,
        ];
        var server = new RedisServer(port, directory, [binary, .. arguments]);
        try
        {
            await server.StartAsync();
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts the (stopped) server again, on the same port and directory.</summary>
    public async Task StartAsync()
    {
        var start = new ProcessStartInfo(_arguments[0])
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Directory,
        };
        foreach (var argument in _arguments.Skip(1))
        {
            start.ArgumentList.Add(argument);
        }

        _process = Process.Start(start) ?? throw new InvalidOperationException("Could not start redis-server.");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var deadline = Stopwatch.StartNew();
        while (await CommandAsync("PING") != "+PONG")
        {
            if (_process.HasExited || deadline.Elapsed > StartTimeout)
            {
                throw new InvalidOperationException($"redis-server on port {Port} did not start: {Log()}");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>Stops the server as an operator does (<c>SIGTERM</c>: Redis flushes its append-only file and exits).</summary>
    public async Task StopAsync()
    {
        if (_process is not { HasExited: false } process)
        {
            return;
        }

        using (var term = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await term!.WaitForExitAsync();
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    /// <summary>Freezes the process (<c>SIGSTOP</c>): it holds its connections open but reads and answers nothing, as a stalled machine does.</summary>
    public Task PauseAsync() => SignalAsync("STOP");

    /// <summary>Lets a frozen process run again (<c>SIGCONT</c>).</summary>
    public Task ResumeAsync() => SignalAsync("CONT");

    /// <summary>Kills the process at once (<c>SIGKILL</c>: no flush, no goodbye to its peers, as a crashed machine) and waits for it to be gone.</summary>
    public async Task KillAsync()
    {
        if (_process is not { HasExited: false } process)
        {
            return;
        }

        await SignalAsync("KILL");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        await process.WaitForExitAsync(timeout.Token);
    }

    private async Task SignalAsync(string signal)
    {
        if (_process is not { HasExited: false } process)
        {
            throw new InvalidOperationException($"redis-server on port {Port} is not running.");
        }

        using var kill = Process.Start("kill", ["-" + signal, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])
            ?? throw new InvalidOperationException("Could not start kill.");
        await kill.WaitForExitAsync();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -{signal} {process.Id} failed ({kill.ExitCode}).");
        }
    }

    /// <summary>Sends one inline command over a fresh connection and returns the first line of the reply; null when the server does not answer.</summary>
    public async Task<string?> CommandAsync(string command)
    {
        var reply = await RawAsync(command);
        if (reply.Length == 0)
        {
            return null;
        }

        var end = reply.IndexOf("\r\n", StringComparison.Ordinal);
        return end >= 0 ? reply[..end] : reply;
    }

    /// <summary>Sends one inline command over a fresh connection and returns the raw reply (what one read gets); empty when the server does not answer.</summary>
    public async Task<string> RawAsync(string command)
    {
        try
        {
            using var client = new TcpClient();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await client.ConnectAsync(IPAddress.Loopback, Port, timeout.Token);
            var stream = client.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes(command + "\r\n"), timeout.Token);
            var buffer = new byte[4096];
            var read = await stream.ReadAsync(buffer, timeout.Token);
            return Encoding.ASCII.GetString(buffer, 0, read);
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
        {
            return string.Empty;
        }
    }

    /// <summary>The server's log, for failure messages.</summary>
    public string Log()
    {
        var path = Path.Combine(Directory, "redis.log");
        return File.Exists(path) ? File.ReadAllText(path) : "(no log)";
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is { } process)
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }

            process.Dispose();
        }

        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    // A cluster node also listens on its port + 10000 (the cluster bus), so both must be free and below 65536.
    private static int FreePort(bool withBus)
    {
        lock (PortGate)
        {
            for (var attempt = 0; attempt < 500; attempt++)
            {
                var port = withBus ? Random.Shared.Next(20000, 45000) : Ephemeral();
                if (!HandedOut.Contains(port) && IsFree(port) && (!withBus || IsFree(port + 10000)))
                {
                    HandedOut.Add(port);
                    return port;
                }
            }
        }

        throw new InvalidOperationException("No free port for a Redis server.");

        static int Ephemeral()
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        static bool IsFree(int port)
        {
            try
            {
                using var listener = new TcpListener(IPAddress.Loopback, port);
                listener.Start();
                return true;
            }
            catch (SocketException)
            {
                return false;
            }
        }
    }
}
