using System.Net;
using System.Net.Http.Json;
using Oncely.PostgreSql.Tests.Infrastructure;
using Payments.Ledger;

namespace Payments.Tests;

/// <summary>
/// <c>Payments:Database=PostgreSql</c> switches the ledger and Oncely's store together, against a real throw-away
/// server (run <c>bash scripts/ensure-postgres.sh</c> once to install its binaries).
/// </summary>
public sealed class PostgreSqlTests : IAsyncLifetime
{
    private PostgresServer _server = null!;

    public async Task InitializeAsync() => _server = await PostgresServer.StartNewAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task PostgreSql_PaymentsAndRetries_ChargeOnceAndKeepTheLedgerBalanced()
    {
        var database = await _server.CreateDatabaseAsync("payments");
        await using var host = await PaymentsHost.StartAsync(postgreSql: _server.ConnectionString(database));
        Assert.IsType<PostgreSqlLedgerDialect>(host.Ledger.Dialect);
        using var client = host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        var body = new { from = alice.Id, to = bob.Id, amount = 100, currency = "EUR" };
        var key = Guid.NewGuid().ToString();

        var parallel = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => PaymentsHost.PostAsync(client, "/payments", body, key)));
        using var replay = await PaymentsHost.PostAsync(client, "/payments", body, key);
        using var insufficient = await PaymentsHost.PostAsync(client, "/payments", new { from = alice.Id, to = bob.Id, amount = 5000, currency = "EUR" });
        var others = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => PaymentsHost.PostAsync(client, "/payments", new { from = bob.Id, to = alice.Id, amount = 10, currency = "EUR" })));

        Assert.Single(parallel, r => r.StatusCode == HttpStatusCode.Created && !r.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(HttpStatusCode.Created, replay.StatusCode);
        Assert.Equal("true", Assert.Single(replay.Headers.GetValues("Idempotent-Replayed")));
        await EndpointTests.AssertProblemAsync(insufficient, HttpStatusCode.UnprocessableEntity, "insufficient-funds");
        Assert.All(others, r => Assert.Equal(HttpStatusCode.Created, r.StatusCode));
        Assert.Equal(9, await host.Ledger.CountPaymentsAsync());
        Assert.Equal(980, (await client.GetFromJsonAsync<Account>($"/accounts/{alice.Id}"))!.Balance);
        var check = await host.Ledger.CheckAsync();
        Assert.True(check.IsBalanced, check.ToString());
    }
}
