using System.Data.Common;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;

namespace Oncely.CrashTests;

/// <summary>
/// Real process kills (SIGKILL) at the dangerous points of an idempotent operation, against a real database; the app is
/// restarted without the fault hook and the client retries with the same key.
/// </summary>
public abstract class CrashSpecification
{
    /// <summary>Short, so a retry can take over a dead worker's lease within the test.</summary>
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(2);

    /// <summary>128 + SIGKILL: what a process killed by signal 9 reports.</summary>
    private const int KilledBySigkill = 137;

    protected abstract string Store { get; }

    /// <summary>A fresh database for one test.</summary>
    protected abstract Task<string> NewDatabaseAsync();

    protected abstract DbConnection CreateConnection(string connectionString);

    [Fact]
    public async Task KilledAfterReservationBeforeBusinessCommit_RetryAfterLeaseExecutesOnce()
    {
        var watch = Stopwatch.StartNew();
        var database = await NewDatabaseAsync();
        var key = Guid.NewGuid().ToString();
        using var client = NewClient();

        await using (var doomed = await ChildApp.StartAsync(Store, database, "after-reservation", Lease))
        {
            await AssertConnectionDropsAsync(client, doomed, "/transfers", key);
            Assert.Equal(KilledBySigkill, await doomed.WaitForExitAsync());
        }

        Assert.Equal(0, await CountAsync(database, "SELECT COUNT(*) FROM ledger WHERE idem_key = @k", key));
        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM handler_runs WHERE idem_key = @k", key));

        await using var restarted = await ChildApp.StartAsync(Store, database, crashAt: null, Lease);
        using var retry = await RetryPastLeaseAsync(client, restarted, "/transfers", key);
        using var replay = await PostAsync(client, restarted, "/transfers", key);

        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.False(retry.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(await retry.Content.ReadAsStringAsync(), await replay.Content.ReadAsStringAsync());
        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM ledger WHERE idem_key = @k", key));
        Assert.Equal(2, await CountAsync(database, "SELECT COUNT(*) FROM handler_runs WHERE idem_key = @k", key));
        AssertWithinBudget(watch);
    }

    [Fact]
    public async Task KilledAfterBusinessCommitBeforeAnswer_RetryReplaysWithoutRunningHandler()
    {
        var watch = Stopwatch.StartNew();
        var database = await NewDatabaseAsync();
        var key = Guid.NewGuid().ToString();
        using var client = NewClient();

        await using (var doomed = await ChildApp.StartAsync(Store, database, "after-commit", Lease))
        {
            await AssertConnectionDropsAsync(client, doomed, "/transfers", key);
            Assert.Equal(KilledBySigkill, await doomed.WaitForExitAsync());
        }

        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM ledger WHERE idem_key = @k", key));

        // No waiting for the lease: the completion committed with the ledger entry, so the key is already Completed.
        await using var restarted = await ChildApp.StartAsync(Store, database, crashAt: null, Lease);
        using var retry = await PostAsync(client, restarted, "/transfers", key);

        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.Equal("true", retry.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal($"/transfers/{key}", retry.Headers.Location?.OriginalString);
        using var body = JsonDocument.Parse(await retry.Content.ReadAsStringAsync());
        Assert.Equal(key, body.RootElement.GetProperty("key").GetString());
        Assert.Equal(1, body.RootElement.GetProperty("run").GetInt64());
        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM ledger WHERE idem_key = @k", key));
        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM handler_runs WHERE idem_key = @k", key));
        AssertWithinBudget(watch);
    }

    [Fact]
    public async Task KilledBetweenRecoveryPoints_RetryResumesAndBankSeesSameKeyAndTransfersOnce()
    {
        var watch = Stopwatch.StartNew();
        var database = await NewDatabaseAsync();
        var key = Guid.NewGuid().ToString();
        using var client = NewClient();

        await using (var doomed = await ChildApp.StartAsync(Store, database, "between-phases", Lease))
        {
            await AssertConnectionDropsAsync(client, doomed, "/two-phase-transfers", key);
            Assert.Equal(KilledBySigkill, await doomed.WaitForExitAsync());
        }

        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM ledger WHERE idem_key = @k AND entry = 'hold'", key));
        Assert.Equal(0, await CountAsync(database, "SELECT COUNT(*) FROM ledger WHERE idem_key = @k AND entry = 'settled'", key));
        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM bank_calls", null));

        await using var restarted = await ChildApp.StartAsync(Store, database, crashAt: null, Lease);
        using var retry = await RetryPastLeaseAsync(client, restarted, "/two-phase-transfers", key);

        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        using var body = JsonDocument.Parse(await retry.Content.ReadAsStringAsync());
        Assert.Equal("funds-held", body.RootElement.GetProperty("resumedFrom").GetString());
        Assert.False(body.RootElement.GetProperty("bankPerformedNow").GetBoolean());
        var bankKey = body.RootElement.GetProperty("bankKey").GetString()!;

        // The bank was called twice, both times with the same derived key, and moved the money once.
        Assert.Equal(2, await CountAsync(database, "SELECT COUNT(*) FROM bank_calls WHERE derived_key = @k", bankKey));
        Assert.Equal(2, await CountAsync(database, "SELECT COUNT(*) FROM bank_calls", null));
        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM bank_transfers", null));
        Assert.NotEqual(key, bankKey);

        // Phase 1 was not repeated; phase 2 committed once.
        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM ledger WHERE idem_key = @k AND entry = 'hold'", key));
        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM ledger WHERE idem_key = @k AND entry = 'settled'", key));
        Assert.Equal(2, await CountAsync(database, "SELECT COUNT(*) FROM handler_runs WHERE idem_key = @k", key));
        AssertWithinBudget(watch);
    }

    [Theory]
    [InlineData("one-commit-after-reservation")]
    [InlineData("one-commit-before-commit")]
    public async Task OneCommit_KilledBeforeCommit_NothingLeftAndRetryExecutesOnceWithoutWaitingForTheLease(string crashAt)
    {
        var watch = Stopwatch.StartNew();
        var database = await NewDatabaseAsync();
        var key = Guid.NewGuid().ToString();
        using var client = NewClient();

        await using (var doomed = await ChildApp.StartAsync(Store, database, crashAt, Lease))
        {
            await AssertConnectionDropsAsync(client, doomed, "/one-commit-transfers", key);
            Assert.Equal(KilledBySigkill, await doomed.WaitForExitAsync());
        }

        // The reservation died with the transaction: no ledger entry, and no record to wait out.
        Assert.Equal(0, await CountAsync(database, "SELECT COUNT(*) FROM ledger WHERE idem_key = @k", key));
        Assert.Equal(0, await CountAsync(database, RecordCountSql, key));
        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM handler_runs WHERE idem_key = @k", key));

        await using var restarted = await ChildApp.StartAsync(Store, database, crashAt: null, Lease);
        var retryWatch = Stopwatch.StartNew();
        using var retry = await PostAsync(client, restarted, "/one-commit-transfers", key);
        var retryTook = retryWatch.Elapsed;
        using var replay = await PostAsync(client, restarted, "/one-commit-transfers", key);

        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.False(retry.Headers.Contains("Idempotent-Replayed"));
        Assert.True(retryTook < Lease, $"The retry took {retryTook}: it should not wait for a lease, there is none.");
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(await retry.Content.ReadAsStringAsync(), await replay.Content.ReadAsStringAsync());
        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM ledger WHERE idem_key = @k", key));
        Assert.Equal(2, await CountAsync(database, "SELECT COUNT(*) FROM handler_runs WHERE idem_key = @k", key));
        AssertWithinBudget(watch);
    }

    [Fact]
    public async Task OneCommit_KilledAfterCommitBeforeAnswer_RetryReplaysWithoutRunningHandler()
    {
        var watch = Stopwatch.StartNew();
        var database = await NewDatabaseAsync();
        var key = Guid.NewGuid().ToString();
        using var client = NewClient();

        await using (var doomed = await ChildApp.StartAsync(Store, database, "one-commit-after-commit", Lease))
        {
            await AssertConnectionDropsAsync(client, doomed, "/one-commit-transfers", key);
            Assert.Equal(KilledBySigkill, await doomed.WaitForExitAsync());
        }

        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM ledger WHERE idem_key = @k", key));
        Assert.Equal(1, await CountAsync(database, RecordCountSql, key));

        await using var restarted = await ChildApp.StartAsync(Store, database, crashAt: null, Lease);
        using var retry = await PostAsync(client, restarted, "/one-commit-transfers", key);

        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.Equal("true", retry.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal($"/one-commit-transfers/{key}", retry.Headers.Location?.OriginalString);
        using var body = JsonDocument.Parse(await retry.Content.ReadAsStringAsync());
        Assert.Equal(1, body.RootElement.GetProperty("run").GetInt64());
        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM ledger WHERE idem_key = @k", key));
        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM handler_runs WHERE idem_key = @k", key));
        AssertWithinBudget(watch);
    }

    /// <summary>Counts the idempotency records of key <c>@k</c> in the store's table.</summary>
    protected abstract string RecordCountSql { get; }

    /// <summary>
    /// About 5 s on an idle machine (two app start-ups and one lease); the guard is loose because start-up time grows
    /// with the machine's load, and it is there to catch a hang, not to benchmark.
    /// </summary>
    private static void AssertWithinBudget(Stopwatch watch)
        => Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"The crash test took {watch.Elapsed}; expected well under 30 s.");

    private static HttpClient NewClient() => new() { Timeout = TimeSpan.FromSeconds(10) };

    private static Task<HttpResponseMessage> PostAsync(HttpClient client, ChildApp app, string path, string key)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(app.BaseAddress, path))
        {
            Content = new StringContent("""{"amount":2500}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("Idempotency-Key", key);
        return client.SendAsync(request);
    }

    /// <summary>The app kills itself mid-request: the client sees the connection drop, not an answer.</summary>
    private static async Task AssertConnectionDropsAsync(HttpClient client, ChildApp app, string path, string key)
    {
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => PostAsync(client, app, path, key));
        Assert.True(error.HttpRequestError is HttpRequestError.ResponseEnded or HttpRequestError.Unknown or HttpRequestError.ConnectionError,
            $"expected a dropped connection, got {error.HttpRequestError}: {error}\n{app.Output}");
    }

    /// <summary>Retries like a client honouring <c>409</c> + <c>Retry-After</c> until the dead worker's lease has expired.</summary>
    private static async Task<HttpResponseMessage> RetryPastLeaseAsync(HttpClient client, ChildApp app, string path, string key)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var response = await PostAsync(client, app, path, key);
            if (response.StatusCode != HttpStatusCode.Conflict || deadline.Elapsed > Lease * 4)
            {
                return response;
            }

            response.Dispose();
            await Task.Delay(250);
        }
    }

    private async Task<long> CountAsync(string database, string sql, string? key)
    {
        await using var connection = CreateConnection(database);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        if (key is not null)
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = "@k";
            parameter.Value = key;
            command.Parameters.Add(parameter);
        }

        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
