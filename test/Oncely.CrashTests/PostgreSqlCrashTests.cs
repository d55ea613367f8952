using System.Data.Common;
using Npgsql;
using Oncely.PostgreSql.Tests.Infrastructure;

namespace Oncely.CrashTests;

/// <summary>Crash tests on the real PostgreSQL server: a fresh database per test.</summary>
public sealed class PostgreSqlCrashTests(PrivatePostgresFixture fixture) : CrashSpecification, IClassFixture<PrivatePostgresFixture>
{
    protected override string Store => "postgresql";

    protected override async Task<string> NewDatabaseAsync()
        => fixture.Server.ConnectionString(await fixture.Server.CreateDatabaseAsync("crash"), maxPoolSize: 20);

    protected override DbConnection CreateConnection(string connectionString) => new NpgsqlConnection(connectionString);

    protected override string RecordCountSql => "SELECT COUNT(*) FROM oncely.idempotency_records WHERE idem_key = @k";
}
