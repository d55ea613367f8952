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
        var database = await NewDatabaseAsync();
        var key = Guid.NewGuid().ToString();
        using var client = NewClient();

        await KillAtAsync(client, database, "/transfers", key, crashAt: "after-reservation");

        Assert.Equal(0, await CountAsync(database, "SELECT COUNT(*) FROM ledger WHERE idem_key = @k", key));
        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM handler_runs WHERE idem_key = @k", key));

        // The reservation outlived the process (SQLite commits it with synchronous = NORMAL in WAL mode: a killed
        // process loses nothing, only a power loss could, and that kills the attempt too).
        Assert.Equal(1, await CountAsync(database, RecordCountSql, key));

        await using var restarted = await ChildApp.StartAsync(Store, database, crashAt: null, Lease);
        using var retry = await RetryPastLeaseAsync(client, restarted, "/transfers", key);
        using var replay = await PostAsync(client, restarted, "/transfers", key);

        await AssertExecutedThenReplayedAsync(retry, replay);
        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM ledger WHERE idem_key = @k", key));
        Assert.Equal(2, await CountAsync(database, "SELECT COUNT(*) FROM handler_runs WHERE idem_key = @k", key));
    }

    [Fact]
    public async Task KilledAfterBusinessCommitBeforeAnswer_RetryReplaysWithoutRunningHandler()
    {
        var database = await NewDatabaseAsync();
        var key = Guid.NewGuid().ToString();
        using var client = NewClient();

        await KillAtAsync(client, database, "/transfers", key, crashAt: "after-commit");

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
    }

    [Fact]
    public async Task KilledBetweenRecoveryPoints_RetryResumesAndBankSeesSameKeyAndTransfersOnce()
    {
        var database = await NewDatabaseAsync();
        var key = Guid.NewGuid().ToString();
        using var client = NewClient();

        await KillAtAsync(client, database, "/two-phase-transfers", key, crashAt: "between-phases");

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
    }

    [Theory]
    [InlineData("one-commit-after-reservation")]
    [InlineData("one-commit-before-commit")]
    public async Task OneCommit_KilledBeforeCommit_NothingLeftAndRetryExecutesOnceWithoutWaitingForTheLease(string crashAt)
    {
        var database = await NewDatabaseAsync();
        var key = Guid.NewGuid().ToString();
        using var client = NewClient();

        await KillAtAsync(client, database, "/one-commit-transfers", key, crashAt);

        // The reservation died with the transaction: no ledger entry, and no record to wait out.
        Assert.Equal(0, await CountAsync(database, "SELECT COUNT(*) FROM ledger WHERE idem_key = @k", key));
        Assert.Equal(0, await CountAsync(database, RecordCountSql, key));
        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM handler_runs WHERE idem_key = @k", key));

        // The first retry executes: a record left InProgress would have answered it 409 until its lease ran out.
        await using var restarted = await ChildApp.StartAsync(Store, database, crashAt: null, Lease);
        using var retry = await PostAsync(client, restarted, "/one-commit-transfers", key);
        using var replay = await PostAsync(client, restarted, "/one-commit-transfers", key);

        await AssertExecutedThenReplayedAsync(retry, replay);
        Assert.Equal(1, await CountAsync(database, "SELECT COUNT(*) FROM ledger WHERE idem_key = @k", key));
        Assert.Equal(2, await CountAsync(database, "SELECT COUNT(*) FROM handler_runs WHERE idem_key = @k", key));
    }

    [Fact]
    public async Task OneCommit_KilledAfterCommitBeforeAnswer_RetryReplaysWithoutRunningHandler()
    {
        var database = await NewDatabaseAsync();
        var key = Guid.NewGuid().ToString();
        using var client = NewClient();

        await KillAtAsync(client, database, "/one-commit-transfers", key, crashAt: "one-commit-after-commit");

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
    }

    /// <summary>Counts the idempotency records of key <c>@k</c> in the store's table.</summary>
    protected abstract string RecordCountSql { get; }

    /// <summary>The timeout guards against a hang; nothing here is meant to come near it.</summary>
    private static HttpClient NewClient() => new() { Timeout = TimeSpan.FromSeconds(60) };

    private static Task<HttpResponseMessage> PostAsync(HttpClient client, ChildApp app, string path, string key)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(app.BaseAddress, path))
        {
            Content = new StringContent("""{"amount":2500}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("Idempotency-Key", key);
        return client.SendAsync(request);
    }

    /// <summary>
    /// Starts the app with its fault hook at <paramref name="crashAt"/>, sends the request, kills the app with SIGKILL
    /// once it reaches that point (<see cref="KillAtCrashPointAsync"/>), and waits until the process has died of it.
    /// </summary>
    private async Task KillAtAsync(HttpClient client, string database, string path, string key, string crashAt)
    {
        await using var doomed = await ChildApp.StartAsync(Store, database, crashAt, Lease);
        await KillAtCrashPointAsync(client, doomed, path, key, crashAt);
        Assert.Equal(KilledBySigkill, await doomed.WaitForExitAsync());
    }

    /// <summary>The retry executed (201, not a replay) and the request after it replayed the same bytes.</summary>
    private static async Task AssertExecutedThenReplayedAsync(HttpResponseMessage retry, HttpResponseMessage replay)
    {
        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.False(retry.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(await retry.Content.ReadAsStringAsync(), await replay.Content.ReadAsStringAsync());
    }

    /// <summary>
    /// Sends the request, waits until the app says it reached <paramref name="crashAt"/> (where it blocks), kills it
    /// there with SIGKILL, and asserts that the client sees the connection drop, not an answer. No race: the app cannot
    /// answer once it has reached the point, and if it answers before reaching it the test says so, with the answer.
    /// </summary>
    private static async Task KillAtCrashPointAsync(HttpClient client, ChildApp app, string path, string key, string crashAt)
    {
        var reached = app.WaitForOutputAsync($"crash hook: reached {crashAt}");
        var request = PostAsync(client, app, path, key);
        if (await Task.WhenAny(reached, request) == request)
        {
            var answer = request.IsCompletedSuccessfully
                ? $"{(int)request.Result.StatusCode} {await request.Result.Content.ReadAsStringAsync()}"
                : request.Exception?.InnerException?.ToString();
            Assert.Fail($"The request ended before the app reached the crash point {crashAt}: {answer}\n{app.Output}");
        }

        app.Kill();
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => request);
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
            if (response.StatusCode != HttpStatusCode.Conflict || deadline.Elapsed > TimeSpan.FromSeconds(60))
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
