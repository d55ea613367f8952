using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using RabbitMQ.Client;

namespace Oncely.MassTransit.Tests.Infrastructure;

/// <summary>
/// A throw-away RabbitMQ broker started from the machine's own Debian package (no Docker): its own data and log
/// directories, Erlang cookie, node name, AMQP port, distribution port and epmd port, all on loopback; killed and
/// deleted at the end (its epmd too). Virtual hosts are created at boot from a definitions file, so each test gets one
/// of its own without a <c>rabbitmqctl</c> round trip.
/// </summary>
public sealed class RabbitMqServer : IAsyncDisposable
{
    public const string User = "oncely";
    public const string Password = "oncely-test";
    private const int VirtualHostCount = 48;
    private const string MissingBroker =
        "The RabbitMQ server (rabbitmq-server) was not found under /usr/lib/rabbitmq. Install the Debian package rabbitmq-server: ./test.sh does it (scripts/ensure-rabbitmq.sh).";

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);
    private readonly string _root;
    private readonly int _epmdPort;
    private readonly StringBuilder _output = new();
    private Process? _process;
    private int _nextVirtualHost;

    private RabbitMqServer(string root, int port, int epmdPort)
    {
        _root = root;
        Port = port;
        _epmdPort = epmdPort;
    }

    /// <summary>The loopback port AMQP listens on.</summary>
    public int Port { get; }

    /// <summary>Starts a new broker and waits until it accepts AMQP connections.</summary>
    public static async Task<RabbitMqServer> StartNewAsync()
    {
        var script = FindServerScript() ?? throw new InvalidOperationException(MissingBroker);
        var root = Path.Combine(Path.GetTempPath(), "oncely-rmq-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(root);
        var server = new RabbitMqServer(root, FreePort(), FreePort());
        try
        {
            server.Start(script);
            await server.WaitUntilReadyAsync();
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>A virtual host no other test uses (the broker made <see cref="VirtualHostCount"/> at boot).</summary>
    public string NewVirtualHost()
    {
        var n = Interlocked.Increment(ref _nextVirtualHost);
        Assert.True(n <= VirtualHostCount, $"The test broker has {VirtualHostCount} virtual hosts; raise VirtualHostCount.");
        return $"t{n}";
    }

    /// <summary>The AMQP address of <paramref name="virtualHost"/>.</summary>
    public Uri HostAddress(string virtualHost) => new($"rabbitmq://127.0.0.1:{Port}/{virtualHost}");

    /// <summary>How many ready (not yet delivered, or returned) messages <paramref name="queue"/> holds; -1 when it does not exist.</summary>
    public async Task<long> MessageCountAsync(string virtualHost, string queue)
    {
        await using var connection = await Factory(virtualHost).CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        try
        {
            var ok = await channel.QueueDeclarePassiveAsync(queue);
            return ok.MessageCount;
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
        {
            return -1;
        }
    }

    /// <summary>Reads (and removes) up to <paramref name="max"/> messages of <paramref name="queue"/>: their headers, as text.</summary>
    public async Task<IReadOnlyList<IReadOnlyDictionary<string, string>>> DrainHeadersAsync(string virtualHost, string queue, int max = 100)
    {
        await using var connection = await Factory(virtualHost).CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var messages = new List<IReadOnlyDictionary<string, string>>();
        while (messages.Count < max && await channel.BasicGetAsync(queue, autoAck: true) is { } got)
        {
            var headers = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (name, value) in got.BasicProperties.Headers ?? new Dictionary<string, object?>())
            {
                headers[name] = value is byte[] bytes ? Encoding.UTF8.GetString(bytes) : value?.ToString() ?? string.Empty;
            }

            messages.Add(headers);
        }

        return messages;
    }

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

    public async ValueTask DisposeAsync()
    {
        if (_process is { } process)
        {
            try
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                    await process.WaitForExitAsync();
                }
            }
            catch (InvalidOperationException)
            {
            }

            process.Dispose();
        }

        // The broker started an epmd of its own on its own port; it outlives the broker unless told to go.
        try
        {
            var kill = new ProcessStartInfo("epmd", "-kill") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            kill.Environment["ERL_EPMD_PORT"] = _epmdPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
            using var epmd = Process.Start(kill);
            if (epmd is not null)
            {
                await epmd.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token);
            }
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or OperationCanceledException)
        {
        }

        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private ConnectionFactory Factory(string virtualHost) => new()
    {
        HostName = "127.0.0.1",
        Port = Port,
        VirtualHost = virtualHost,
        UserName = User,
        Password = Password,
        AutomaticRecoveryEnabled = false,
    };

    private void Start(string script)
    {
        var invariant = System.Globalization.CultureInfo.InvariantCulture;
        var cookie = Path.Combine(_root, ".erlang.cookie");
        File.WriteAllText(cookie, Convert.ToHexString(RandomNumberGenerator.GetBytes(20)));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(cookie, UnixFileMode.UserRead); // Erlang refuses a cookie others can read
        }

        File.WriteAllText(Path.Combine(_root, "enabled_plugins"), "[].");
        File.WriteAllText(Path.Combine(_root, "rabbitmq-env.conf"), string.Empty);
        var definitions = Path.Combine(_root, "definitions.json");
        File.WriteAllText(definitions, Definitions());
        File.WriteAllText(Path.Combine(_root, "rabbitmq.conf"), string.Join('\n',
            $"listeners.tcp.default = 127.0.0.1:{Port}",
            $"load_definitions = {definitions}",
            "disk_free_limit.absolute = 50MB",
            "log.console = false",
            "log.file.level = warning",
            string.Empty));

        var start = new ProcessStartInfo(script)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = _root,
        };
        var environment = start.Environment;
        environment["HOME"] = _root; // the Erlang cookie is read from $HOME
        environment["RABBITMQ_CONF_ENV_FILE"] = Path.Combine(_root, "rabbitmq-env.conf"); // not /etc/rabbitmq's
        environment["RABBITMQ_CONFIG_FILE"] = Path.Combine(_root, "rabbitmq.conf");
        environment["RABBITMQ_ENABLED_PLUGINS_FILE"] = Path.Combine(_root, "enabled_plugins");
        environment["RABBITMQ_NODENAME"] = $"oncely-{Guid.NewGuid():N}@localhost";
        environment["RABBITMQ_NODE_IP_ADDRESS"] = "127.0.0.1";
        environment["RABBITMQ_NODE_PORT"] = Port.ToString(invariant);
        environment["RABBITMQ_DIST_PORT"] = FreePort().ToString(invariant);
        environment["RABBITMQ_MNESIA_BASE"] = Path.Combine(_root, "mnesia");
        environment["RABBITMQ_LOG_BASE"] = Path.Combine(_root, "log");
        environment["RABBITMQ_PID_FILE"] = Path.Combine(_root, "rabbitmq.pid");
        environment["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = "-kernel inet_dist_use_interface {127,0,0,1}";
        environment["ERL_EPMD_PORT"] = _epmdPort.ToString(invariant);
        environment["ERL_EPMD_ADDRESS"] = "127.0.0.1";
        environment.Remove("RABBITMQ_ENABLED_PLUGINS");

        _process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {script}.");
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        _process.StandardInput.Close();
    }

    private async Task WaitUntilReadyAsync()
    {
        var factory = Factory("t1");
        var watch = Stopwatch.StartNew();
        Exception? last = null;
        while (watch.Elapsed < StartTimeout)
        {
            if (_process!.HasExited)
            {
                throw new InvalidOperationException($"rabbitmq-server exited during start-up with code {_process.ExitCode}:\n{Output}\n{ReadLogs()}");
            }

            try
            {
                await using var connection = await factory.CreateConnectionAsync();
                return;
            }
            catch (Exception e) when (e is RabbitMQ.Client.Exceptions.BrokerUnreachableException or IOException or SocketException)
            {
                last = e;
            }

            await Task.Delay(250);
        }

        throw new TimeoutException($"rabbitmq-server did not accept AMQP connections within {StartTimeout}: {last?.Message}\n{Output}\n{ReadLogs()}");
    }

    private string ReadLogs()
    {
        var directory = Path.Combine(_root, "log");
        return Directory.Exists(directory)
            ? string.Join('\n', Directory.GetFiles(directory).Select(f => $"--- {f}\n{File.ReadAllText(f)}"))
            : string.Empty;
    }

    private static string Definitions()
    {
        // rabbit_password_hashing_sha256: base64(salt ++ sha256(salt ++ password)), a 4-byte salt.
        var salt = RandomNumberGenerator.GetBytes(4);
        var hash = SHA256.HashData([.. salt, .. Encoding.UTF8.GetBytes(Password)]);
        var hosts = Enumerable.Range(1, VirtualHostCount).Select(i => $"t{i}").ToList();
        return JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["users"] = new[] { new Dictionary<string, object> { ["name"] = User, ["password_hash"] = Convert.ToBase64String([.. salt, .. hash]), ["hashing_algorithm"] = "rabbit_password_hashing_sha256", ["tags"] = new[] { "administrator" } } },
            ["vhosts"] = hosts.Select(h => new Dictionary<string, string> { ["name"] = h }).ToArray(),
            ["permissions"] = hosts.Select(h => new Dictionary<string, string> { ["user"] = User, ["vhost"] = h, ["configure"] = ".*", ["write"] = ".*", ["read"] = ".*" }).ToArray(),
        });
    }

    private static string? FindServerScript()
    {
        const string Debian = "/usr/lib/rabbitmq/bin/rabbitmq-server";
        if (File.Exists(Debian))
        {
            return Debian;
        }

        return Directory.Exists("/usr/lib/rabbitmq/lib")
            ? Directory.GetFiles("/usr/lib/rabbitmq/lib", "rabbitmq-server", SearchOption.AllDirectories).Where(f => f.EndsWith("/sbin/rabbitmq-server", StringComparison.Ordinal)).Order(StringComparer.Ordinal).LastOrDefault()
            : null;
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
        }
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>The one broker every RabbitMQ test class shares, started once per test run.</summary>
public sealed class RabbitMqFixture : IAsyncLifetime
{
    private RabbitMqServer? _server;

    public RabbitMqServer Server => _server ?? throw new InvalidOperationException("The RabbitMQ server has not started.");

    public async Task InitializeAsync() => _server = await RabbitMqServer.StartNewAsync();

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

/// <summary>Every class that needs the broker joins this collection: one broker for the run, a virtual host per test.</summary>
[CollectionDefinition(Name)]
public sealed class RabbitMqCollection : ICollectionFixture<RabbitMqFixture>
{
    public const string Name = "RabbitMq";
}
