using System.Net;
using System.Net.Http.Json;
using Payments.Ledger;

namespace Payments.Tests;

public sealed class IdempotencyTests : IAsyncLifetime
{
    private PaymentsHost _host = null!;

    public async Task InitializeAsync() => _host = await PaymentsHost.StartAsync();

    public async Task DisposeAsync() => await _host.DisposeAsync();

    [Fact]
    public async Task Payment_RetriedWithSameKey_ChargesOnceAndReplaysTheSameBody()
    {
        using var client = _host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        var body = new { from = alice.Id, to = bob.Id, amount = 250, currency = "EUR" };
        var key = Guid.NewGuid().ToString();

        using var first = await PaymentsHost.PostAsync(client, "/payments", body, key);
        using var retry = await PaymentsHost.PostAsync(client, "/payments", body, key);

        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.False(first.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal("true", Assert.Single(retry.Headers.GetValues("Idempotent-Replayed")));
        Assert.Equal(await first.Content.ReadAsByteArrayAsync(), await retry.Content.ReadAsByteArrayAsync());
        Assert.Equal(first.Headers.Location, retry.Headers.Location);
        Assert.Equal(1, await _host.Ledger.CountPaymentsAsync());
        Assert.Equal(750, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
    }

    [Fact]
    public async Task Payment_TwentyParallelWithOneKey_ChargesExactlyOnce()
    {
        using var client = _host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 10_000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        var body = new { from = alice.Id, to = bob.Id, amount = 300, currency = "EUR" };
        var key = Guid.NewGuid().ToString();

        var responses = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => PaymentsHost.PostAsync(client, "/payments", body, key)));

        // One ran; the others were answered from the record (replayed) or told it was still running (409, retry later).
        Assert.All(responses, r => Assert.Contains(r.StatusCode, new[] { HttpStatusCode.Created, HttpStatusCode.Conflict }));
        Assert.Contains(responses, r => r.StatusCode == HttpStatusCode.Created && !r.Headers.Contains("Idempotent-Replayed"));
        Assert.Single(responses, r => r.StatusCode == HttpStatusCode.Created && !r.Headers.Contains("Idempotent-Replayed"));
        using var settled = await PaymentsHost.PostAsync(client, "/payments", body, key);
        Assert.Equal(HttpStatusCode.Created, settled.StatusCode);
        Assert.Equal(1, await _host.Ledger.CountPaymentsAsync());
        Assert.Equal(9_700, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
        var check = await _host.Ledger.CheckAsync();
        Assert.True(check.IsBalanced, check.ToString());
        foreach (var response in responses)
        {
            response.Dispose();
        }
    }

    [Fact]
    public async Task Payment_KeyReusedWithOtherAmount_Returns422AndChargesOnce()
    {
        using var client = _host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        var key = Guid.NewGuid().ToString();

        using var first = await PaymentsHost.PostAsync(client, "/payments", new { from = alice.Id, to = bob.Id, amount = 100, currency = "EUR" }, key);
        using var reused = await PaymentsHost.PostAsync(client, "/payments", new { from = alice.Id, to = bob.Id, amount = 900, currency = "EUR" }, key);

        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, reused.StatusCode);
        Assert.EndsWith("idempotency-key-reused", (await EndpointTests.ProblemAsync(reused)).GetProperty("type").GetString(), StringComparison.Ordinal);
        Assert.Equal(900, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
    }

    [Fact]
    public async Task SameKey_OtherTenant_IsAnIndependentOperation()
    {
        using var a = _host.Client(PaymentsHost.TenantA);
        using var b = _host.Client(PaymentsHost.TenantB);
        var key = Guid.NewGuid().ToString();

        using var first = await PaymentsHost.PostAsync(a, "/accounts", new { name = "shared", currency = "EUR" }, key);
        using var second = await PaymentsHost.PostAsync(b, "/accounts", new { name = "shared", currency = "EUR" }, key);

        Assert.Equal(HttpStatusCode.Created, second.StatusCode);
        Assert.False(second.Headers.Contains("Idempotent-Replayed"));
        Assert.NotEqual(first.Headers.Location, second.Headers.Location);
    }

    [Fact]
    public async Task IdempotencySwitchedOff_SameKeyTwice_ChargesTwice()
    {
        await using var host = await PaymentsHost.StartAsync(idempotency: false);
        using var client = host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        var body = new { from = alice.Id, to = bob.Id, amount = 250, currency = "EUR" };

        using var first = await PaymentsHost.PostAsync(client, "/payments", body, "same-key");
        using var retry = await PaymentsHost.PostAsync(client, "/payments", body, "same-key");
        using var keyless = await PaymentsHost.PostAsync(client, "/payments", body, key: null);

        Assert.All(new[] { first, retry, keyless }, r => Assert.Equal(HttpStatusCode.Created, r.StatusCode));
        Assert.Equal(3, await host.Ledger.CountPaymentsAsync());
        Assert.True((await host.Ledger.CheckAsync()).IsBalanced);
    }

    [Fact]
    public async Task ShippedAppSettings_DemoKeys_MapToTheirTenants()
    {
        await using var host = await PaymentsHost.StartAsync(contentRoot: SampleDirectory());
        using var a = host.Client(PaymentsHost.TenantA);
        using var b = host.Client(PaymentsHost.TenantB);

        var account = await PaymentsHost.CreateAccountAsync(a);

        Assert.Equal(HttpStatusCode.OK, (await a.GetAsync($"/accounts/{account.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await b.GetAsync($"/accounts/{account.Id}")).StatusCode);
    }

    private static string SampleDirectory()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Oncely.slnx")))
        {
            directory = directory.Parent;
        }

        return Path.Combine(directory?.FullName ?? throw new InvalidOperationException("Oncely.slnx not found above the test output."), "samples", "Payments");
    }
}
