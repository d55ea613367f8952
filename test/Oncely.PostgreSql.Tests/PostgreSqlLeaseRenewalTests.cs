using System.Net;
using Npgsql;
using Oncely.PostgreSql.Tests.Infrastructure;
using Oncely.Storage.Specification;

namespace Oncely.PostgreSql.Tests;

/// <summary>
/// Issue 9, item 17 (decision-table row 21): two app instances share one database with a one-second lease, and the
/// handler runs three seconds. The executing instance renews its lease while the handler runs, so retries on the other
/// instance are answered <c>409</c> in-progress instead of taking the operation over, and the charge happens once.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlLeaseRenewalTests(PostgresFixture fixture) : IAsyncLifetime
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan HandlerTime = TimeSpan.FromSeconds(3);

    private readonly List<ChargesApp> _apps = [];
    private NpgsqlDataSource _database = null!;

    public async Task InitializeAsync()
    {
        var database = await fixture.DatabaseForAsync(GetType());
        _database = fixture.Server.CreateDataSource(database);
        await PostgreSqlChargeLedger.CreateTableAsync(_database);

        for (var i = 0; i < 2; i++)
        {
            _apps.Add(await PostgreSqlChargesApp.StartAsync($"instance-{i}", fixture.Server.ConnectionString(database), HandlerTime, configureIdempotency: o => o.Lease = Lease));
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var app in _apps)
        {
            await app.DisposeAsync();
        }

        await _database.DisposeAsync();
    }

    [Fact]
    public async Task Handler_RunsThreeTimesItsLease_RetriesOnAnotherInstanceGetInProgressAndItRunsOnce()
    {
        var key = $"slow-{Guid.NewGuid():N}";
        var started = DateTimeOffset.UtcNow;
        var first = _apps[0].SendAsync(key, 100);

        // Retries on the other instance well past the original lease's end, while the handler still runs.
        var retries = new List<ChargesApp.Answer>();
        foreach (var at in new[] { 1.5, 2.2 })
        {
            var wait = started + TimeSpan.FromSeconds(at) - DateTimeOffset.UtcNow;
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait);
            }

            retries.Add(await _apps[1].SendAsync(key, 100));
        }

        var answer = await first;
        var replay = await _apps[1].SendAsync(key, 100);

        Assert.Equal(HttpStatusCode.Created, answer.Status);
        Assert.False(answer.Replayed);
        Assert.All(retries, r =>
        {
            Assert.Equal(HttpStatusCode.Conflict, r.Status);
            Assert.Equal("idempotency-request-in-progress", r.ProblemType);
        });
        Assert.Equal(HttpStatusCode.Created, replay.Status);
        Assert.True(replay.Replayed);
        Assert.Equal(answer.BodyText, replay.BodyText);
        Assert.Equal(1, _apps.Sum(a => a.HandlerRuns));
        Assert.Equal(1, (await new PostgreSqlChargeLedger(_database).ChargesPerKeyAsync()).GetValueOrDefault(key));
    }
}
