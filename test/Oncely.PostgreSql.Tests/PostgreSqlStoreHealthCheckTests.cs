using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using Oncely.PostgreSql.Tests.Infrastructure;

namespace Oncely.PostgreSql.Tests;

/// <summary>
/// <c>AddHealthChecks().AddIdempotencyStore()</c> on the PostgreSQL store: a real server, a port nothing listens on, and a
/// port that accepts connections but never answers (a server hung or a network path black-holing packets).
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlStoreHealthCheckTests(PostgresFixture fixture) : StoreTestBase(fixture)
{
    private static async Task<HealthReportEntry> CheckAsync(string connectionString, TimeSpan? timeout = null)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddIdempotency().UsePostgreSql(connectionString);
        services.AddHealthChecks().AddIdempotencyStore(timeout: timeout);
        await using var provider = services.BuildServiceProvider();
        var report = await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        return Assert.Single(report.Entries).Value;
    }

    [Fact]
    public async Task AddIdempotencyStore_ServerUp_Healthy()
    {
        var entry = await CheckAsync(Server.ConnectionString(Database));

        Assert.Equal(HealthStatus.Healthy, entry.Status);
        Assert.Equal("PostgreSqlIdempotencyStore", entry.Data["store"]);
    }

    [Fact]
    public async Task AddIdempotencyStore_NothingListensOnThePort_UnhealthyWithTheReason()
    {
        var closedPort = FreePort();
        var connectionString = new NpgsqlConnectionStringBuilder(Server.ConnectionString(Database)) { Host = "127.0.0.1", Port = closedPort }.ToString();

        var entry = await CheckAsync(connectionString);

        Assert.Equal(HealthStatus.Unhealthy, entry.Status);
        Assert.Contains("PostgreSqlIdempotencyStore failed", entry.Description, StringComparison.Ordinal);
        Assert.NotNull(entry.Exception);
    }

    [Fact]
    public async Task AddIdempotencyStore_ServerNeverAnswers_UnhealthyAfterTheTimeout()
    {
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var accepted = new List<Socket>();
        var accepting = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    accepted.Add(await silent.AcceptSocketAsync());
                }
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
            }
        });
        var connectionString = new NpgsqlConnectionStringBuilder(Server.ConnectionString(Database))
        {
            Host = "127.0.0.1",
            Port = ((IPEndPoint)silent.LocalEndpoint).Port,
            Timeout = 30,
        }.ToString();

        var entry = await CheckAsync(connectionString, timeout: TimeSpan.FromMilliseconds(500));
        silent.Stop();
        await accepting;
        accepted.ForEach(s => s.Dispose());

        Assert.Equal(HealthStatus.Unhealthy, entry.Status);
        Assert.Contains("did not answer within 500 ms", entry.Description, StringComparison.Ordinal);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
