namespace Oncely.PostgreSql.Tests.Infrastructure;

/// <summary>The bench's addition to the tests' throw-away server: a restart with PostgreSQL's default durability.</summary>
public sealed partial class PostgresServer
{
    /// <summary>
    /// Restarts the server with PostgreSQL's defaults for durability (<c>fsync = on</c>, <c>synchronous_commit = on</c>,
    /// <c>full_page_writes = on</c>): every commit waits for its WAL flush, as in production. The tests' server turns
    /// fsync off; a comparison of commits per operation means nothing without the flush.
    /// </summary>
    public async Task RestartWithDefaultDurabilityAsync()
    {
        await StopServerFastAsync().ConfigureAwait(false);
        await RunToolAsync("pg_ctl",
        [
            "-D", _dataDirectory,
            "-l", Path.Combine(_root, "server.log"),
            "-o", $"-p {Port} -k {_root} -c listen_addresses=127.0.0.1 -c max_connections=300",
            "-w", "start",
        ]).ConfigureAwait(false);
    }
}

/// <summary>The bench's reading of the server's log (the statement counts of <c>RoundTrips</c>).</summary>
public sealed partial class PostgresServer
{
    /// <summary>The server's log so far (<c>server.log</c> in the server's directory), read while the server writes it.</summary>
    public string ReadLog()
    {
        using var stream = new FileStream(Path.Combine(_root, "server.log"), FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
