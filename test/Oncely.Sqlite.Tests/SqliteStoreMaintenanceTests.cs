using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Oncely.Sqlite.Tests;

/// <summary>
/// The host's maintenance service on a real SQLite file (issue 9, item 16b): on every purge tick it also deletes
/// key-reuse audit entries older than <c>AuditRetention</c>, by the store's clock, and keeps recent ones.
/// </summary>
public sealed class SqliteStoreMaintenanceTests : IDisposable
{
    private readonly TemporaryDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task Sweeper_AuditEntriesOlderThanRetention_DeletedOnTheNextTickRecentKept()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero));
        var file = _directory.NewDatabasePath();
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<TimeProvider>(clock);
        builder.Services.AddIdempotency().UseSqlite(TemporaryDirectory.ConnectionStringFor(file)).ConfigureMaintenance(o =>
        {
            o.PurgeInterval = TimeSpan.FromMinutes(1);
            o.PurgeBatchSize = 2;
            o.AuditRetention = TimeSpan.FromDays(30);
        });
        using var host = builder.Build();
        await host.StartAsync();
        var audit = (IIdempotencyAuditStore)host.Services.GetRequiredService<IIdempotencyStore>();
        for (var i = 0; i < 5; i++)
        {
            await audit.AppendAsync(Entry($"old-{i}", clock.GetUtcNow()), CancellationToken.None);
        }

        clock.Advance(TimeSpan.FromDays(25));
        await audit.AppendAsync(Entry("recent", clock.GetUtcNow()), CancellationToken.None);
        clock.Advance(TimeSpan.FromDays(6));

        // The sweeper's timer runs on the fake clock: keep it ticking (a minute at a time) until the purge has run.
        await WaitUntilAsync(async () =>
        {
            clock.Advance(TimeSpan.FromMinutes(1));
            return await CountAsync(file) == 1;
        });
        Assert.Equal(1L, await CountAsync(file, "recent"));
        await host.StopAsync();
    }

    [Fact]
    public void AuditRetention_Default_Is30Days()
        => Assert.Equal(TimeSpan.FromDays(30), new IdempotencyMaintenanceOptions().AuditRetention);

    private static KeyReuseAuditEntry Entry(string key, DateTimeOffset at)
        => new(new IdempotencyRecordId("tenant", "POST /payments", key), new string('a', 64), new string('b', 64), "{}", at);

    private static async Task<long> CountAsync(string file, string? key = null)
    {
        await using var connection = new SqliteConnection(TemporaryDirectory.ConnectionStringFor(file));
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = key is null ? "SELECT COUNT(*) FROM oncely_key_reuse_audit" : "SELECT COUNT(*) FROM oncely_key_reuse_audit WHERE idem_key = @k";
        command.Parameters.AddWithValue("@k", key ?? string.Empty);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "The condition did not become true within 10 seconds.");
            await Task.Delay(20);
        }
    }
}
