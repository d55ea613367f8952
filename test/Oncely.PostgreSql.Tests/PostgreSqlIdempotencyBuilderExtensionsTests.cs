using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Oncely.PostgreSql.Tests.Infrastructure;

namespace Oncely.PostgreSql.Tests;

[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlIdempotencyBuilderExtensionsTests(PostgresFixture fixture) : StoreTestBase(fixture)
{
    [Fact]
    public async Task UsePostgreSql_ConnectionString_RegistersWorkingStoreThatOwnsItsDataSource()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IIdempotencyStore, InMemoryIdempotencyStore>();
        new Builder(services).UsePostgreSql(Server.ConnectionString(Database));

        await using (var provider = services.BuildServiceProvider())
        {
            var store = provider.GetRequiredService<IIdempotencyStore>();
            Assert.IsType<PostgreSqlIdempotencyStore>(store);
            Assert.Single(services, d => d.ServiceType == typeof(IIdempotencyStore));
            var reservation = await store.TryReserveAsync(NewId(), Fingerprint('a'), Minute, Hour, default);
            Assert.Equal(ReservationOutcome.Acquired, reservation.Outcome);
        }
    }

    [Fact]
    public async Task UsePostgreSql_NoDataSourceOrConnectionString_UsesDataSourceFromServicesWithOptions()
    {
        var services = new ServiceCollection();
        services.AddSingleton(DataSource);
        new Builder(services).UsePostgreSql(o =>
        {
            o.Schema = "from_di";
            o.CommandTimeout = TimeSpan.FromSeconds(3);
        });

        await using var provider = services.BuildServiceProvider();
        var store = Assert.IsType<PostgreSqlIdempotencyStore>(provider.GetRequiredService<IIdempotencyStore>());

        Assert.Same(DataSource, store.DataSource);
        Assert.Equal("from_di", store.Schema.SchemaName);
        Assert.Equal(ReservationOutcome.Acquired, (await store.TryReserveAsync(NewId(), Fingerprint('a'), Minute, Hour, default)).Outcome);
    }

    [Fact]
    public void UsePostgreSql_ExplicitDataSource_UsedAndNotOwned()
    {
        var services = new ServiceCollection();
        new Builder(services).UsePostgreSql(o => o.DataSource = DataSource);

        using (var provider = services.BuildServiceProvider())
        {
            var store = Assert.IsType<PostgreSqlIdempotencyStore>(provider.GetRequiredService<IIdempotencyStore>());
            Assert.Same(DataSource, store.DataSource);
        }

        // Disposing the container did not dispose the application's data source.
        using var connection = DataSource.OpenConnection();
    }

    [Fact]
    public void UsePostgreSql_NothingToConnectTo_ThrowsMessageSayingWhatToSet()
    {
        var services = new ServiceCollection();
        new Builder(services).UsePostgreSql(_ => { });
        using var provider = services.BuildServiceProvider();

        var ex = Assert.Throws<InvalidOperationException>(() => provider.GetRequiredService<IIdempotencyStore>());

        Assert.Contains("ConnectionString", ex.Message);
        Assert.Contains("NpgsqlDataSource", ex.Message);
    }

    [Fact]
    public void UsePostgreSql_InvalidOptions_ThrowsAtRegistration()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => new Builder(new ServiceCollection()).UsePostgreSql(o => o.TableName = "bad-name"));

        Assert.Contains("TableName", ex.Message);
    }

    [Fact]
    public void UsePostgreSql_EmptyConnectionString_Throws()
    {
        Assert.Throws<ArgumentException>(() => new Builder(new ServiceCollection()).UsePostgreSql(" "));
    }

    private sealed class Builder(IServiceCollection services) : IIdempotencyBuilder
    {
        public IServiceCollection Services { get; } = services;
    }
}
