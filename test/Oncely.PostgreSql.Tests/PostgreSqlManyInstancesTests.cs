using System.Net;
using Npgsql;
using Oncely.PostgreSql.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Oncely.PostgreSql.Tests;

/// <summary>
/// Three app instances, each with its own connection pool, share one database, as a load-balanced deployment does.
/// Clients talk to them over real HTTP; the handler's effect is a row in the same database, so the database itself
/// says how many times each operation ran.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlManyInstancesTests(PostgresFixture fixture, ITestOutputHelper output) : IAsyncLifetime
{
    private const int Instances = 3;
    private const int Keys = 30;
    private const int RequestsPerKey = 10;
    private static readonly TimeSpan HandlerDelay = TimeSpan.FromMilliseconds(30);

    private readonly List<ChargesApp> _apps = [];
    private NpgsqlDataSource _database = null!;

    public async Task InitializeAsync()
    {
        var database = await fixture.DatabaseForAsync(GetType());
        _database = fixture.Server.CreateDataSource(database, maxPoolSize: 5);
        await using (var create = _database.CreateCommand(ChargesApp.CreateChargesTableSql))
        {
            await create.ExecuteNonQueryAsync();
        }

        for (var i = 0; i < Instances; i++)
        {
            _apps.Add(await ChargesApp.StartAsync($"instance-{i}", fixture.Server.ConnectionString(database, maxPoolSize: 40), HandlerDelay));
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
    public async Task ChargeStorm_ThreeInstances30KeysTimes10_OneChargePerKeyAndEveryAnswerFaithful()
    {
        await WarmUpAsync();
        var runsBefore = _apps.Sum(a => a.HandlerRuns);
        var keys = Enumerable.Range(0, Keys).Select(k => $"storm-{k}-{Guid.NewGuid():N}").ToArray();

        // Request n carries key n / 10 and goes to instance n % 3: each key's ten requests are spread over all three.
        var requests = Enumerable.Range(0, Keys * RequestsPerKey)
            .Select(n => (App: _apps[n % Instances], Key: keys[n / RequestsPerKey], Amount: 100L + (n / RequestsPerKey)))
            .OrderBy(_ => Random.Shared.Next())
            .ToArray();
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var sends = requests.Select(async r =>
        {
            await start.Task;
            return await r.App.SendAsync(r.Key, r.Amount);
        }).ToArray();
        start.SetResult();
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        var answers = await Task.WhenAll(sends);
        var stormTime = stopwatch.Elapsed;

        var charges = await ChargesApp.ChargesPerKeyAsync(_database);
        Assert.Equal(Keys, charges.Keys.Count(k => k.StartsWith("storm-", StringComparison.Ordinal)));
        Assert.All(keys, key => Assert.Equal(1, charges.GetValueOrDefault(key)));
        Assert.Equal(Keys, _apps.Sum(a => a.HandlerRuns) - runsBefore);

        var executions = new Dictionary<string, ChargesApp.Answer>(StringComparer.Ordinal);
        foreach (var group in answers.GroupBy(a => a.Key))
        {
            Assert.Equal(RequestsPerKey, group.Count());
            var execution = Assert.Single(group, a => a.IsExecution);
            executions[group.Key] = execution;
            Assert.Equal(group.Key, execution.Charge.Key);
            Assert.Equal(execution.Charge.Id, await ChargeIdAsync(group.Key));
            foreach (var answer in group.Where(a => !a.IsExecution))
            {
                AssertReplayOrInProgress(execution, answer);
            }
        }

        // After the storm every instance replays every key, byte for byte, whichever instance executed it.
        var after = await Task.WhenAll(
            from app in _apps
            from key in keys
            select app.SendAsync(key, executions[key].Charge.Amount));
        Assert.All(after, answer => AssertReplay(executions[answer.Key], answer));
        Assert.Equal(Keys, _apps.Sum(a => a.HandlerRuns) - runsBefore);
        Assert.All((await ChargesApp.ChargesPerKeyAsync(_database)).Values, count => Assert.Equal(1, count));

        output.WriteLine($"storm: {answers.Length} requests in {stormTime.TotalMilliseconds:F0} ms: {answers.Count(a => a.IsExecution)} executions, "
            + $"{answers.Count(a => a.Status == HttpStatusCode.Conflict)} in progress (409), {answers.Count(a => a.Replayed)} replays; "
            + $"executions per instance: {string.Join(", ", executions.Values.GroupBy(e => e.Instance).OrderBy(g => g.Key).Select(g => $"{g.Key} {g.Count()}"))}");
    }

    internal static void AssertReplayOrInProgress(ChargesApp.Answer execution, ChargesApp.Answer answer)
    {
        if (answer.Status == HttpStatusCode.Conflict)
        {
            Assert.False(answer.Replayed);
            Assert.Equal("idempotency-request-in-progress", answer.ProblemType);
            Assert.Equal(TimeSpan.FromSeconds(1), answer.RetryAfter);
            return;
        }

        AssertReplay(execution, answer);
    }

    internal static void AssertReplay(ChargesApp.Answer execution, ChargesApp.Answer answer)
    {
        Assert.True(answer.Replayed, $"Expected a replay of {execution}, got {answer}");
        Assert.Equal(execution.Status, answer.Status);
        Assert.Equal(execution.MediaType, answer.MediaType);
        Assert.Equal(execution.Location, answer.Location);
        Assert.Equal(execution.Body, answer.Body);
    }

    private async Task<long> ChargeIdAsync(string key)
    {
        await using var command = _database.CreateCommand("SELECT id FROM charges WHERE key = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = key });
        return (long)(await command.ExecuteScalarAsync())!;
    }

    // Opens HTTP connections and pooled database connections first, so the storm measures the race and not the
    // cost of 300 TCP and PostgreSQL handshakes. Warm-up keys are charges like any other; the assertions ignore them.
    private async Task WarmUpAsync()
    {
        await Task.WhenAll(_apps.SelectMany(app => Enumerable.Range(0, 20).Select(i => app.SendAsync($"warm-{app.Name}-{i}-{Guid.NewGuid():N}", 1))));
    }
}
