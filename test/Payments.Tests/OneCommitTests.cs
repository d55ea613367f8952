using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Oncely;
using Oncely.AspNetCore;
using Oncely.PostgreSql.Tests.Infrastructure;

namespace Payments.Tests;

/// <summary>
/// Issue 10, item 3: deposits and payments reserve their record inside their own transaction, so a money movement is one
/// commit; a duplicate waits for the first one's transaction and replays its answer.
/// </summary>
public sealed class OneCommitTests : IAsyncLifetime
{
    private PaymentsHost _host = null!;

    public async Task InitializeAsync() => _host = await PaymentsHost.StartAsync();

    public async Task DisposeAsync() => await _host.DisposeAsync();

    [Fact]
    public async Task Payment_TwentyParallelWithOneKey_OneChargeAndEveryDuplicateReplays()
    {
        using var client = _host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 10_000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        var body = new { from = alice.Id, to = bob.Id, amount = 300, currency = "EUR" };
        var key = Guid.NewGuid().ToString();

        var responses = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => PaymentsHost.PostAsync(client, "/payments", body, key)));

        // SQLite serialises writers, so every duplicate waits for the first transaction and then replays its answer.
        Assert.All(responses, r => Assert.Equal(HttpStatusCode.Created, r.StatusCode));
        Assert.Single(responses, r => !r.Headers.Contains("Idempotent-Replayed"));
        var first = await responses.Single(r => !r.Headers.Contains("Idempotent-Replayed")).Content.ReadAsStringAsync();
        foreach (var response in responses)
        {
            Assert.Equal(first, await response.Content.ReadAsStringAsync());
            response.Dispose();
        }

        Assert.Equal(1, await _host.Ledger.CountPaymentsAsync());
        Assert.Equal(9_700, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
        Assert.True((await _host.Ledger.CheckAsync()).IsBalanced);
    }

    [Fact]
    public async Task Payment_InsufficientFunds_RefusalCommittedAndReplayedAfterADeposit()
    {
        using var client = _host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 100);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        var body = new { from = alice.Id, to = bob.Id, amount = 500, currency = "EUR" };
        var key = Guid.NewGuid().ToString();

        using var refused = await PaymentsHost.PostAsync(client, "/payments", body, key);
        using var deposited = await PaymentsHost.PostAsync(client, $"/accounts/{alice.Id}/deposits", new { amount = 1000 });
        using var retry = await PaymentsHost.PostAsync(client, "/payments", body, key);

        await EndpointTests.AssertProblemAsync(refused, HttpStatusCode.UnprocessableEntity, "insufficient-funds");
        Assert.Equal(HttpStatusCode.Created, deposited.StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, retry.StatusCode);
        Assert.Equal("true", Assert.Single(retry.Headers.GetValues("Idempotent-Replayed")));
        Assert.Equal(0, await _host.Ledger.CountPaymentsAsync());
    }

    [Fact]
    public async Task Deposit_SameKeyOtherAmount_Refused422AndDepositedOnce()
    {
        using var client = _host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice");
        var key = Guid.NewGuid().ToString();

        using var first = await PaymentsHost.PostAsync(client, $"/accounts/{alice.Id}/deposits", new { amount = 100 }, key);
        using var reused = await PaymentsHost.PostAsync(client, $"/accounts/{alice.Id}/deposits", new { amount = 999 }, key);
        using var retry = await PaymentsHost.PostAsync(client, $"/accounts/{alice.Id}/deposits", new { amount = 100 }, key);

        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, reused.StatusCode);
        Assert.Equal("true", Assert.Single(retry.Headers.GetValues("Idempotent-Replayed")));
        Assert.Equal(100, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
    }
}

/// <summary>The one-commit money movements on a real PostgreSQL server: commits counted, concurrency over real HTTP.</summary>
public sealed class OneCommitPostgreSqlTests : IAsyncLifetime
{
    private PostgresServer _server = null!;

    public async Task InitializeAsync() => _server = await PostgresServer.StartNewAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    /// <summary>
    /// Counts write transactions (the commits that cost a WAL flush) through transaction ids: every transaction that
    /// writes gets the next one, read-only ones (the middleware's read, a replay) get none. Between two
    /// <c>txid_current()</c> calls (each its own transaction), <c>after - before - 1</c> transactions wrote.
    /// </summary>
    [Theory]
    [InlineData(true, 1)]
    [InlineData(false, 2)]
    public async Task Payment_WriteTransactionsPerPayment_OneCommitIsOneTwoCommitIsTwo(bool oneCommit, long expected)
    {
        var database = await _server.CreateDatabaseAsync("commits");
        var connectionString = _server.ConnectionString(database);
        await using var host = await PaymentsHost.StartAsync(postgreSql: connectionString, oneCommit: oneCommit);
        using var client = host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        var body = new { from = alice.Id, to = bob.Id, amount = 100, currency = "EUR" };
        var key = Guid.NewGuid().ToString();

        var before = await TransactionIdAsync(connectionString);
        using var payment = await PaymentsHost.PostAsync(client, "/payments", body, key);
        var afterPayment = await TransactionIdAsync(connectionString);
        using var replay = await PaymentsHost.PostAsync(client, "/payments", body, key);
        var afterReplay = await TransactionIdAsync(connectionString);

        Assert.Equal(HttpStatusCode.Created, payment.StatusCode);
        Assert.Equal("true", Assert.Single(replay.Headers.GetValues("Idempotent-Replayed")));
        Assert.Equal(expected, afterPayment - before - 1);
        if (oneCommit)
        {
            // Row 20: a one-commit endpoint answers a retry of a Completed request from its read alone.
            Assert.Equal(0, afterReplay - afterPayment - 1);
        }
        Assert.Equal(1, await host.Ledger.CountPaymentsAsync());
    }

    [Fact]
    public async Task ThreeInstancesOverHttp_ConcurrentDuplicates_ExactlyOneChargePerKeyAndDuplicatesReplay()
    {
        var database = await _server.CreateDatabaseAsync("instances");
        var connectionString = _server.ConnectionString(database, maxPoolSize: 30);
        var hosts = new List<PaymentsHost>();
        var keyRing = Directory.CreateTempSubdirectory("payments-shared-keys-");
        try
        {
            for (var i = 0; i < 3; i++)
            {
                hosts.Add(await PaymentsHost.StartAsync(postgreSql: connectionString, kestrel: true, keyRing: keyRing.FullName));
            }

            var clients = hosts.Select(h => h.Client()).ToArray();
            var alice = await PaymentsHost.CreateAccountAsync(clients[0], "alice", deposit: 1_000_000);
            var bob = await PaymentsHost.CreateAccountAsync(clients[1], "bob");
            const int Keys = 12;
            const int Duplicates = 6;
            var requests = new List<Task<(string Key, HttpResponseMessage Response)>>();
            for (var k = 0; k < Keys; k++)
            {
                var key = Guid.NewGuid().ToString();
                var body = new { from = alice.Id, to = bob.Id, amount = 10 + k, currency = "EUR" };
                for (var d = 0; d < Duplicates; d++)
                {
                    var client = clients[(k + d) % clients.Length];
                    requests.Add(Task.Run(async () => (key, await PaymentsHost.PostAsync(client, "/payments", body, key))));
                }
            }

            var answers = await Task.WhenAll(requests);

            foreach (var group in answers.GroupBy(a => a.Key))
            {
                var responses = group.Select(a => a.Response).ToList();
                Assert.All(responses, r => Assert.Contains(r.StatusCode, new[] { HttpStatusCode.Created, HttpStatusCode.Conflict }));
                Assert.Single(responses, r => r.StatusCode == HttpStatusCode.Created && !r.Headers.Contains("Idempotent-Replayed"));
                var original = await responses.Single(r => r.StatusCode == HttpStatusCode.Created && !r.Headers.Contains("Idempotent-Replayed")).Content.ReadAsStringAsync();
                foreach (var replayed in responses.Where(r => r.Headers.Contains("Idempotent-Replayed")))
                {
                    Assert.Equal(original, await replayed.Content.ReadAsStringAsync());
                }
            }

            var expectedTotal = Enumerable.Range(0, Keys).Sum(k => 10L + k);
            Assert.Equal(Keys, await hosts[0].Ledger.CountPaymentsAsync());
            Assert.Equal(expectedTotal, (await clients[2].GetFromJsonAsync<Payments.Ledger.Account>($"/accounts/{bob.Id}"))!.Balance);
            var check = await hosts[0].Ledger.CheckAsync();
            Assert.True(check.IsBalanced, check.ToString());
            foreach (var (_, response) in answers)
            {
                response.Dispose();
            }

            foreach (var client in clients)
            {
                client.Dispose();
            }
        }
        finally
        {
            foreach (var host in hosts)
            {
                await host.DisposeAsync();
            }

            keyRing.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Payment_KeyHeldByAnUncommittedTransaction_409AfterTheLockTimeoutThenRunsOnceReleased()
    {
        var database = await _server.CreateDatabaseAsync("locktimeout");
        var connectionString = _server.ConnectionString(database);
        await using var host = await PaymentsHost.StartAsync(
            postgreSql: connectionString,
            services: s => s.Configure<IdempotencyOptions>(o => o.ReservationLockTimeout = TimeSpan.FromMilliseconds(300)));
        using var client = host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        var body = new { from = alice.Id, to = bob.Id, amount = 100, currency = "EUR" };
        var key = Guid.NewGuid().ToString();
        var store = (ITransactionalIdempotencyStore)host.Services.GetRequiredService<IIdempotencyStore>();

        // Another instance's one-commit transaction holds the key, uncommitted.
        await using (var holder = new NpgsqlConnection(connectionString))
        {
            await holder.OpenAsync();
            await using var held = await holder.BeginTransactionAsync();
            var reserved = await store.TryReserveAsync(held, new IdempotencyRecordId("tenant-a", "POST /payments", key), new string('0', 64), TimeSpan.FromSeconds(30), TimeSpan.FromHours(1), TimeSpan.FromSeconds(1), CancellationToken.None);
            Assert.Equal(ReservationOutcome.Acquired, reserved.Outcome);

            using var blocked = await PaymentsHost.PostAsync(client, "/payments", body, key);

            Assert.Equal(HttpStatusCode.Conflict, blocked.StatusCode);
            Assert.Equal(0, await host.Ledger.CountPaymentsAsync());
            await held.RollbackAsync();
        }

        using var released = await PaymentsHost.PostAsync(client, "/payments", body, key);

        Assert.Equal(HttpStatusCode.Created, released.StatusCode);
        Assert.False(released.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(1, await host.Ledger.CountPaymentsAsync());
        Assert.Equal(900, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
    }

    private static async Task<long> TransactionIdAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT txid_current()", connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }
}
