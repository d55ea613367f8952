namespace Oncely.PostgreSql.Tests.Infrastructure;

/// <summary>The one PostgreSQL server every test class in the <see cref="PostgresCollection"/> shares, started once per test run.</summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    private PostgresServer? _server;

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Lazy<Task<string>>> _databases = new();

    public PostgresServer Server => _server ?? throw new InvalidOperationException("The PostgreSQL server has not started.");

    /// <summary>The database for one test class: created on first ask, then the same for every test of that class.</summary>
    public Task<string> DatabaseForAsync(Type testClass)
        => _databases.GetOrAdd(testClass.Name, name => new Lazy<Task<string>>(() => Server.CreateDatabaseAsync(name))).Value;

    public async Task InitializeAsync() => _server = await PostgresServer.StartNewAsync();

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

/// <summary>A server of its own, for a class that stops and restarts it.</summary>
public sealed class PrivatePostgresFixture : IAsyncLifetime
{
    private PostgresServer? _server;

    public PostgresServer Server => _server ?? throw new InvalidOperationException("The PostgreSQL server has not started.");

    public async Task InitializeAsync() => _server = await PostgresServer.StartNewAsync();

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

/// <summary>
/// Every PostgreSQL test class joins this collection: one server for the run, one fresh database per class. Classes in
/// one collection run one after another, so the parallel tests race only against themselves (2 cores).
/// </summary>
[CollectionDefinition(Name)]
public sealed class PostgresCollection : ICollectionFixture<PostgresFixture>
{
    public const string Name = "PostgreSql";
}
