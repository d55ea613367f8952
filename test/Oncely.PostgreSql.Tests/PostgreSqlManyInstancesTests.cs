using Npgsql;
using Oncely.PostgreSql.Tests.Infrastructure;
using Oncely.Storage.Specification;
using Xunit.Abstractions;

namespace Oncely.PostgreSql.Tests;

/// <summary>
/// Three app instances, each with its own connection pool, share one database, as a load-balanced deployment does.
/// Clients talk to them over real HTTP; the handler's effect is a row in the same database, so the database itself
/// says how many times each operation ran.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlManyInstancesTests(PostgresFixture fixture, ITestOutputHelper output) : ManyInstancesSpecification(output), IAsyncLifetime
{
    private string _database = "";
    private NpgsqlDataSource _check = null!;

    protected override IChargeLedger Ledger => new PostgreSqlChargeLedger(_check);

    public async Task InitializeAsync()
    {
        _database = await fixture.DatabaseForAsync(GetType());
        _check = fixture.Server.CreateDataSource(_database, maxPoolSize: 5);
        await PostgreSqlChargeLedger.CreateTableAsync(_check);
    }

    public async Task DisposeAsync() => await _check.DisposeAsync();

    [Fact]
    public Task ChargeStorm_ThreeInstances30KeysTimes10_OneChargePerKeyAndEveryAnswerFaithful() => ChargeStormAsync();

    protected override Task<ChargesApp> StartInstanceAsync(string name, TimeSpan handlerDelay)
        => PostgreSqlChargesApp.StartAsync(name, fixture.Server.ConnectionString(_database, maxPoolSize: 40), handlerDelay);
}
