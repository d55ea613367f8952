using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Npgsql;

namespace Oncely.PostgreSql.Tests.Infrastructure;

/// <summary>
/// A throw-away PostgreSQL server started from the machine's own binaries (no Docker): <c>initdb</c> into a temp
/// directory, <c>pg_ctl start</c> on a free loopback port, <c>pg_ctl stop -m immediate</c> and delete at the end.
/// When the tests run as root, initdb and pg_ctl run as the <c>postgres</c> OS user (PostgreSQL refuses root).
/// </summary>
public sealed partial class PostgresServer : IAsyncDisposable
{
    private const string MissingBinaries =
        "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or under /usr/lib/postgresql/*/bin. "
        + "Install the Debian package postgresql: ./test.sh does it (scripts/ensure-postgres.sh).";

    private static readonly TimeSpan ToolTimeout = TimeSpan.FromSeconds(90);

    private readonly string _binDirectory;
    private readonly string _root;
    private readonly string _dataDirectory;
    private readonly bool _runAsPostgresUser;
    private int _databaseCounter;

    private PostgresServer(string binDirectory, string root, int port, bool runAsPostgresUser)
    {
        _binDirectory = binDirectory;
        _root = root;
        _dataDirectory = Path.Combine(root, "data");
        Port = port;
        _runAsPostgresUser = runAsPostgresUser;
    }

    /// <summary>The loopback TCP port the server listens on.</summary>
    public int Port { get; }

    /// <summary>Where the server binaries were found.</summary>
    public string BinDirectory => _binDirectory;

    /// <summary>Creates a new cluster and starts it.</summary>
    public static async Task<PostgresServer> StartNewAsync()
    {
        var bin = FindBinDirectory() ?? throw new InvalidOperationException(MissingBinaries);
        var asPostgres = Environment.IsPrivilegedProcess;
        var root = Path.Combine(Path.GetTempPath(), "oncely-pg-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(root);
        var server = new PostgresServer(bin, root, FreePort(), asPostgres);
        try
        {
            if (asPostgres)
            {
                await RunAsync("chown", ["postgres:postgres", root], asPostgresUser: false).ConfigureAwait(false);
            }

            await server.RunToolAsync("initdb", ["-D", server._dataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"]).ConfigureAwait(false);
            await server.StartServerAsync().ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>A connection string to <paramref name="database"/> on this server.</summary>
    public string ConnectionString(string database, int maxPoolSize = 100) => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Username = "postgres",
        Database = database,
        MaxPoolSize = maxPoolSize,
        Timeout = 5,
    }.ConnectionString;

    /// <summary>A new data source (its own connection pool) for <paramref name="database"/>.</summary>
    public NpgsqlDataSource CreateDataSource(string database, int maxPoolSize = 100) => NpgsqlDataSource.Create(ConnectionString(database, maxPoolSize));

    /// <summary>Creates a fresh, empty database and returns its name.</summary>
    public async Task<string> CreateDatabaseAsync(string prefix)
    {
        var clean = NotIdentifier().Replace(prefix.ToLowerInvariant(), "_");
        var name = $"{clean[..Math.Min(clean.Length, 40)]}_{Interlocked.Increment(ref _databaseCounter)}";
        var builder = new NpgsqlConnectionStringBuilder(ConnectionString("postgres")) { Pooling = false };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
        await command.ExecuteNonQueryAsync();
        return name;
    }

    /// <summary>Stops the server at once (as a crash or a network cut looks to clients).</summary>
    public Task StopServerAsync() => RunToolAsync("pg_ctl", ["-D", _dataDirectory, "stop", "-m", "immediate", "-w"]);

    /// <summary>
    /// Stops the server the way an operator or an orchestrator does (<c>pg_ctl stop -m fast</c>): sessions are
    /// disconnected, open transactions rolled back, committed work kept; new connections are refused from the start.
    /// </summary>
    public Task StopServerFastAsync() => RunToolAsync("pg_ctl", ["-D", _dataDirectory, "stop", "-m", "fast", "-w"]);

    /// <summary>Starts the (stopped) server again on the same port and data.</summary>
    public Task StartServerAsync() => RunToolAsync("pg_ctl",
    [
        "-D", _dataDirectory,
        "-l", Path.Combine(_root, "server.log"),
        "-o", $"-p {Port} -k {_root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=300",
        "-w", "start",
    ]);

    /// <summary>Stops the server and deletes its directory.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (File.Exists(Path.Combine(_dataDirectory, "postmaster.pid")))
            {
                await StopServerAsync();
            }
        }
        catch (InvalidOperationException)
        {
            // Already stopped; the directory goes anyway.
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

    private static string? FindBinDirectory()
    {
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var pgCtl = Path.Combine(directory, "pg_ctl");
            if (File.Exists(pgCtl) && File.Exists(Path.Combine(directory, "initdb")))
            {
                // Follow a symlink (Debian links /usr/local/bin/pg_ctl to /usr/lib/postgresql/N/bin) so pg_ctl finds postgres beside it.
                var target = new FileInfo(pgCtl).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? pgCtl;
                return Path.GetDirectoryName(target);
            }
        }

        const string Debian = "/usr/lib/postgresql";
        if (!Directory.Exists(Debian))
        {
            return null;
        }

        return Directory.GetDirectories(Debian)
            .Select(d => (Dir: Path.Combine(d, "bin"), Version: Version.TryParse(Path.GetFileName(d).Contains('.', StringComparison.Ordinal) ? Path.GetFileName(d) : Path.GetFileName(d) + ".0", out var v) ? v : null))
            .Where(x => x.Version is not null && File.Exists(Path.Combine(x.Dir, "initdb")) && File.Exists(Path.Combine(x.Dir, "pg_ctl")))
            .OrderByDescending(x => x.Version)
            .Select(x => x.Dir)
            .FirstOrDefault();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private Task RunToolAsync(string tool, IReadOnlyList<string> arguments)
        => RunAsync(Path.Combine(_binDirectory, tool), arguments, _runAsPostgresUser);

    private static async Task RunAsync(string fileName, IReadOnlyList<string> arguments, bool asPostgresUser)
    {
        var start = new ProcessStartInfo
        {
            FileName = asPostgresUser ? "runuser" : fileName,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        if (asPostgresUser)
        {
            foreach (var a in (string[])["-u", "postgres", "--", fileName])
            {
                start.ArgumentList.Add(a);
            }
        }

        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {fileName}.");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(ToolTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"{fileName} {string.Join(' ', arguments)} did not finish within {ToolTimeout}.");
        }

        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"{fileName} {string.Join(' ', arguments)} failed with exit code {process.ExitCode}:\n{await stdout}\n{await stderr}");
        }
    }

    [GeneratedRegex("[^a-z0-9_]")]
    private static partial Regex NotIdentifier();
}
