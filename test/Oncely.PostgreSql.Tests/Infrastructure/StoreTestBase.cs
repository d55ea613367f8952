using Npgsql;

namespace Oncely.PostgreSql.Tests.Infrastructure;

/// <summary>A fresh database per test class, a data source for it and a store on it.</summary>
public abstract class StoreTestBase : IAsyncLifetime
{
    protected static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    protected static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    private static int s_keys;

    private readonly PostgresFixture _fixture;

    protected StoreTestBase(PostgresFixture fixture)
    {
        _fixture = fixture;
        Server = fixture.Server;
    }

    protected PostgresServer Server { get; }

    protected string Database { get; private set; } = "";

    protected NpgsqlDataSource DataSource { get; private set; } = null!;

    internal PostgreSqlIdempotencyStore Store { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Database = await _fixture.DatabaseForAsync(GetType());
        DataSource = Server.CreateDataSource(Database);
        Store = CreateStore(DataSource);
        await Store.InitializeAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await Store.DisposeAsync();
        await DataSource.DisposeAsync();
    }

    internal static PostgreSqlIdempotencyStore CreateStore(NpgsqlDataSource dataSource, Action<PostgreSqlIdempotencyStoreOptions>? configure = null)
    {
        var options = new PostgreSqlIdempotencyStoreOptions();
        configure?.Invoke(options);
        return new PostgreSqlIdempotencyStore(dataSource, ownsDataSource: false, options);
    }

    protected static IdempotencyRecordId NewId(string tenant = "tenant-a", string operation = "POST /payments")
        => new(tenant, operation, $"key-{Interlocked.Increment(ref s_keys)}-{Guid.NewGuid():N}");

    protected static string Fingerprint(char c) => new(c, 64);

    protected async Task<long> ScalarAsync(string sql)
    {
        await using var command = DataSource.CreateCommand(sql);
        return Convert.ToInt64(await command.ExecuteScalarAsync());
    }
}
