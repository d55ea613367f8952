using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Oncely.LoadTest;

/// <summary>
/// A throw-away PostgreSQL cluster for the run, started the way the PostgreSQL tests do it: <c>initdb</c> into a temp
/// directory, <c>pg_ctl start</c> on a free loopback port (fsync off: this measures Oncely, not the disk), stopped and
/// deleted at the end. As root, the tools run as the <c>postgres</c> user. Binaries: <c>bash scripts/ensure-postgres.sh</c>.
/// </summary>
internal sealed class PostgresServer : IAsyncDisposable
{
    private readonly string _bin;
    private readonly string _root;
    private readonly bool _asPostgres;

    private PostgresServer(string bin, string root, int port, bool asPostgres)
    {
        _bin = bin;
        _root = root;
        Port = port;
        _asPostgres = asPostgres;
    }

    public int Port { get; }

    private string DataDirectory => Path.Combine(_root, "data");

    public string ConnectionString(string database, int maxPoolSize) => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Username = "postgres",
        Database = database,
        MaxPoolSize = maxPoolSize,
        Timeout = 15,
    }.ConnectionString;

    public static async Task<PostgresServer> StartAsync()
    {
        var bin = FindBinDirectory() ?? throw new InvalidOperationException(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found; run `bash scripts/ensure-postgres.sh`, or pass --skip-postgres.");
        var asPostgres = Environment.IsPrivilegedProcess;
        var root = Path.Combine(Path.GetTempPath(), "oncely-bench-pg-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(root);
        var server = new PostgresServer(bin, root, FreePort(), asPostgres);
        try
        {
            if (asPostgres)
            {
                await RunAsync("chown", ["postgres:postgres", root], asPostgresUser: false);
            }

            await server.ToolAsync("initdb", ["-D", server.DataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"]);
            await server.ToolAsync("pg_ctl",
            [
                "-D", server.DataDirectory,
                "-l", Path.Combine(root, "server.log"),
                "-o", $"-p {server.Port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
                "-w", "start",
            ]);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    public async Task<string> CreateDatabaseAsync(string name)
    {
        var builder = new NpgsqlConnectionStringBuilder(ConnectionString("postgres", 1)) { Pooling = false };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
        await command.ExecuteNonQueryAsync();
        return name;
    }

    public async Task<string> VersionAsync()
    {
        await using var connection = new NpgsqlConnection(ConnectionString("postgres", 1));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SHOW server_version", connection);
        return (string)(await command.ExecuteScalarAsync())!;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (File.Exists(Path.Combine(DataDirectory, "postmaster.pid")))
            {
                await ToolAsync("pg_ctl", ["-D", DataDirectory, "stop", "-m", "immediate", "-w"]);
            }
        }
        catch (InvalidOperationException)
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

    private static string? FindBinDirectory()
    {
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var pgCtl = Path.Combine(directory, "pg_ctl");
            if (File.Exists(pgCtl) && File.Exists(Path.Combine(directory, "initdb")))
            {
                var target = new FileInfo(pgCtl).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? pgCtl;
                return Path.GetDirectoryName(target);
            }
        }

        const string Debian = "/usr/lib/postgresql";
        return Directory.Exists(Debian)
            ? Directory.GetDirectories(Debian)
                .Select(d => Path.Combine(d, "bin"))
                .Where(d => File.Exists(Path.Combine(d, "initdb")) && File.Exists(Path.Combine(d, "pg_ctl")))
                .OrderByDescending(d => int.TryParse(Path.GetFileName(Path.GetDirectoryName(d)), out var v) ? v : 0)
                .FirstOrDefault()
            : null;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private Task ToolAsync(string tool, IReadOnlyList<string> arguments) => RunAsync(Path.Combine(_bin, tool), arguments, _asPostgres);

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
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"{fileName} {string.Join(' ', arguments)} did not finish within 90 s.");
        }

        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{fileName} {string.Join(' ', arguments)} failed ({process.ExitCode}):\n{await stdout}\n{await stderr}");
        }
    }
}
