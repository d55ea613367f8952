using Microsoft.EntityFrameworkCore;
using Oncely.PostgreSql;
using Oncely.PostgreSql.Tests.Infrastructure;

namespace Oncely.EntityFrameworkCore.Tests;

/// <summary>One throw-away PostgreSQL server for the EF Core tests.</summary>
public sealed class PostgresServerFixture : IAsyncLifetime
{
    public PostgresServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await PostgresServer.StartNewAsync();

    public async Task DisposeAsync()
    {
        if (Server is not null)
        {
            await Server.DisposeAsync();
        }
    }
}

/// <summary>EF Core (Npgsql provider) and the PostgreSQL store on one real database.</summary>
public sealed class PostgreSqlStageCompletionTests(PostgresServerFixture fixture) : StageCompletionSpecification, IClassFixture<PostgresServerFixture>
{
    private string _connectionString = string.Empty;

    protected override async Task PrepareDatabaseAsync()
        => _connectionString = fixture.Server.ConnectionString(await fixture.Server.CreateDatabaseAsync("ef_shop"));

    protected override ShopContext NewContext()
        => new PostgresShopContext(new DbContextOptionsBuilder<PostgresShopContext>().UseNpgsql(_connectionString).Options);

    protected override UnmappedContext NewUnmappedContext()
        => new(new DbContextOptionsBuilder<UnmappedContext>().UseNpgsql(_connectionString).Options);

    protected override void UseStore(IIdempotencyBuilder builder) => builder.UsePostgreSql(_connectionString);
}
