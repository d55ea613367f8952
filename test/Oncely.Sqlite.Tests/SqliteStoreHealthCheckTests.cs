using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Oncely.Sqlite.Tests;

/// <summary>
/// <c>AddHealthChecks().AddIdempotencyStore()</c> against real SQLite files: one that answers, one whose directory does
/// not exist, and one locked by another connection.
/// </summary>
public sealed class SqliteStoreHealthCheckTests : IDisposable
{
    private readonly TemporaryDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private static async Task<HealthReportEntry> CheckAsync(string connectionString, Action<IHealthChecksBuilder> add)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddIdempotency().UseSqlite(connectionString);
        add(services.AddHealthChecks());
        await using var provider = services.BuildServiceProvider();
        var report = await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        return Assert.Single(report.Entries).Value;
    }

    [Fact]
    public async Task AddIdempotencyStore_StoreAnswers_HealthyNamingTheStore()
    {
        var file = _directory.NewDatabasePath();

        var entry = await CheckAsync(TemporaryDirectory.ConnectionStringFor(file), checks => checks.AddIdempotencyStore());

        Assert.Equal(HealthStatus.Healthy, entry.Status);
        Assert.Contains("SqliteIdempotencyStore answered", entry.Description, StringComparison.Ordinal);
        Assert.Equal("SqliteIdempotencyStore", entry.Data["store"]);
    }

    [Fact]
    public async Task AddIdempotencyStore_Probe_WritesNoRecord()
    {
        var file = _directory.NewDatabasePath();
        var connectionString = TemporaryDirectory.ConnectionStringFor(file);

        await CheckAsync(connectionString, checks => checks.AddIdempotencyStore());

        await using var connection = new SqliteConnection(connectionString);
        await connection.OpenAsync();
        await using var count = connection.CreateCommand();
        count.CommandText = "SELECT COUNT(*) FROM oncely_records";
        Assert.Equal(0L, await count.ExecuteScalarAsync());
    }

    [Fact]
    public async Task AddIdempotencyStore_DirectoryMissing_UnhealthyWithTheReason()
    {
        var file = Path.Combine(_directory.Path, "no-such-directory", "oncely.db");

        var entry = await CheckAsync(TemporaryDirectory.ConnectionStringFor(file), checks => checks.AddIdempotencyStore());

        Assert.Equal(HealthStatus.Unhealthy, entry.Status);
        Assert.Contains("SqliteIdempotencyStore failed", entry.Description, StringComparison.Ordinal);
        Assert.Contains("unable to open database file", entry.Description, StringComparison.Ordinal);
        Assert.NotNull(entry.Exception);
    }

    [Fact]
    public async Task AddIdempotencyStore_DownWithFailureStatusDegraded_DegradedAndTagged()
    {
        var file = Path.Combine(_directory.Path, "no-such-directory", "oncely.db");

        var entry = await CheckAsync(
            TemporaryDirectory.ConnectionStringFor(file),
            checks => checks.AddIdempotencyStore(failureStatus: HealthStatus.Degraded, tags: ["ready"]));

        Assert.Equal(HealthStatus.Degraded, entry.Status);
        Assert.Equal(["ready"], entry.Tags);
    }

    [Fact]
    public async Task AddIdempotencyStore_SlowerThanThreshold_Degraded()
    {
        var file = _directory.NewDatabasePath();

        // No real read takes less than one tick: the threshold stands for "the store is slower than it should be".
        var entry = await CheckAsync(TemporaryDirectory.ConnectionStringFor(file), checks => checks.AddIdempotencyStore(degradedThreshold: TimeSpan.FromTicks(1)));

        Assert.Equal(HealthStatus.Degraded, entry.Status);
        Assert.Contains("slower than", entry.Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddIdempotencyStore_DatabaseLockedByAnotherConnection_UnhealthyAfterTheTimeout()
    {
        var file = _directory.NewDatabasePath();
        // Unpooled: no idle handle of the store keeps the file open while the other connection takes it.
        var connectionString = new SqliteConnectionStringBuilder { DataSource = file, Pooling = false }.ToString();
        Assert.Equal(HealthStatus.Healthy, (await CheckAsync(connectionString, checks => checks.AddIdempotencyStore())).Status); // schema created
        await using var locker = new SqliteConnection(connectionString);
        await locker.OpenAsync();
        await using (var lockIt = locker.CreateCommand())
        {
            // Another process holding the file: an exclusive lock that readers wait on until their busy timeout.
            lockIt.CommandText = "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; DELETE FROM oncely_records;";
            await lockIt.ExecuteNonQueryAsync();
        }

        var entry = await CheckAsync(connectionString, checks => checks.AddIdempotencyStore(timeout: TimeSpan.FromMilliseconds(300)));

        Assert.True(entry.Status == HealthStatus.Unhealthy, entry.Description + " " + entry.Duration);
        Assert.Contains("did not answer within 300 ms", entry.Description, StringComparison.Ordinal);
    }
}
