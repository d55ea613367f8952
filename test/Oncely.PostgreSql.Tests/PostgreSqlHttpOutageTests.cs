using Oncely.PostgreSql.Tests.Infrastructure;
using Oncely.Storage.Specification;
using Xunit.Abstractions;

namespace Oncely.PostgreSql.Tests;

/// <summary>
/// A PostgreSQL outage under live HTTP traffic: the server is stopped (<c>pg_ctl stop -m fast</c>) and started again
/// while clients keep charging; the charges are rows in the same database. Uses a server of its own, so the shared one
/// keeps serving the other classes.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlHttpOutageTests(PrivatePostgresFixture fixture, ITestOutputHelper output)
    : ChargeTrafficOutageSpecification(output), IClassFixture<PrivatePostgresFixture>, IAsyncLifetime
{
    private readonly PostgresServer _server = fixture.Server;
    private string _database = "";

    public async Task InitializeAsync()
    {
        _database = await _server.CreateDatabaseAsync("http_outage");
        await using var dataSource = _server.CreateDataSource(_database, maxPoolSize: 2);
        await PostgreSqlChargeLedger.CreateTableAsync(dataSource);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    protected override Task<ChargesApp> StartAppAsync(string name, TimeSpan handlerDelay)
        => PostgreSqlChargesApp.StartAsync(
            name,
            _server.ConnectionString(_database, maxPoolSize: 20),
            handlerDelay,
            o => o.CommandTimeout = TimeSpan.FromSeconds(2));

    protected override Task StopServerAsync() => _server.StopServerFastAsync();

    protected override Task StartServerAsync() => _server.StartServerAsync();

    protected override async ValueTask<IReadOnlyDictionary<string, long>> ChargesPerKeyAsync()
    {
        await using var check = _server.CreateDataSource(_database, maxPoolSize: 2);
        return await new PostgreSqlChargeLedger(check).ChargesPerKeyAsync();
    }
}
