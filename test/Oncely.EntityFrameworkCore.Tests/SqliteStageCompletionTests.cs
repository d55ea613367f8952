using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Oncely.Sqlite;

namespace Oncely.EntityFrameworkCore.Tests;

/// <summary>EF Core (Sqlite provider) and the SQLite store on one real database file.</summary>
public sealed class SqliteStageCompletionTests : StageCompletionSpecification
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "oncely-ef-tests", Guid.NewGuid().ToString("N"));
    private readonly string _connectionString;

    public SqliteStageCompletionTests()
    {
        Directory.CreateDirectory(_directory);
        _connectionString = new SqliteConnectionStringBuilder { DataSource = Path.Combine(_directory, "shop.db"), DefaultTimeout = 5 }.ToString();
    }

    protected override ShopContext NewContext()
        => new SqliteShopContext(new DbContextOptionsBuilder<SqliteShopContext>().UseSqlite(_connectionString).Options);

    protected override UnmappedContext NewUnmappedContext()
        => new(new DbContextOptionsBuilder<UnmappedContext>().UseSqlite(_connectionString).Options);

    protected override void UseStore(IIdempotencyBuilder builder) => builder.UseSqlite(_connectionString);

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
