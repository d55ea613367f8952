using Microsoft.EntityFrameworkCore;
using Oncely.PostgreSql;
using Oncely.PostgreSql.Tests.Infrastructure;

namespace Oncely.EntityFrameworkCore.Tests;

/// <summary>EF Core (Npgsql provider) and the PostgreSQL store on one real database.</summary>
public sealed class PostgreSqlStageCompletionTests(PrivatePostgresFixture fixture) : StageCompletionSpecification, IClassFixture<PrivatePostgresFixture>
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
