using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.DependencyInjection;
using Oncely.Sqlite;
using Oncely.Storage.Specification;

namespace Oncely.EntityFrameworkCore.Tests;

/// <summary>
/// Stored answers encrypted at rest when the answer is staged in the application's EF Core context
/// (<see cref="IdempotencyExecutionDbContextExtensions.StageCompletionAsync"/>) and saved by its own <c>SaveChangesAsync</c>,
/// over the SQLite store on one database file. "At rest" is that file and its write-ahead log, byte for byte.
/// </summary>
public sealed class SqliteStoredAnswerProtectionTests : TransactionalStoredAnswerProtectionSpecification
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "oncely-ef-tests", Guid.NewGuid().ToString("N"));
    private readonly string _path;
    private readonly string _connectionString;
    private readonly List<ServiceProvider> _providers = [];

    public SqliteStoredAnswerProtectionTests()
    {
        Directory.CreateDirectory(_directory);
        _path = Path.Combine(_directory, "shop.db");
        _connectionString = new SqliteConnectionStringBuilder { DataSource = _path, DefaultTimeout = 5 }.ToString();
    }

    protected override async ValueTask<IIdempotencyStore> OpenStoreAsync()
    {
        await using (var context = NewContext())
        {
            await context.Database.EnsureCreatedAsync();
        }

        // The SQLite store as an application gets it (its type is internal to Oncely.Sqlite).
        var services = new ServiceCollection();
        services.AddIdempotency().UseSqlite(_connectionString);
        var provider = services.BuildServiceProvider();
        _providers.Add(provider);
        var store = provider.GetRequiredService<IIdempotencyStore>();
        await ((IIdempotencyStoreInitializer)store).InitializeAsync(CancellationToken.None);
        return store;
    }

    protected override Task<IReadOnlyList<byte[]>> ReadAtRestAsync()
    {
        var held = new List<byte[]>();
        foreach (var path in new[] { _path, _path + "-wal", _path + "-journal" })
        {
            if (File.Exists(path))
            {
                using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                using var copy = new MemoryStream();
                file.CopyTo(copy);
                held.Add(copy.ToArray());
            }
        }

        return Task.FromResult<IReadOnlyList<byte[]>>(held);
    }

    protected override async Task CompleteInTransactionAsync(IdempotencyExecution execution, IdempotentResponse answer)
    {
        await using var context = NewContext();
        await using var transaction = await context.Database.BeginTransactionAsync();
        await execution.ReserveInTransactionAsync(transaction.GetDbTransaction());
        context.Payments.Add(new Payment { IdempotencyKey = execution.Id.Key, Amount = 100 });
        await execution.StageCompletionAsync(context, answer);
        await context.SaveChangesAsync();
        await transaction.CommitAsync();
    }

    private SqliteShopContext NewContext()
        => new(new DbContextOptionsBuilder<SqliteShopContext>().UseSqlite(_connectionString).Options);

    public override void Dispose()
    {
        foreach (var provider in _providers)
        {
            provider.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }

        base.Dispose();
    }
}
