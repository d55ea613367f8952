using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Payments.Ledger;

namespace Payments.Tests;

public sealed class EndpointTests : IAsyncLifetime
{
    private PaymentsHost _host = null!;

    public async Task InitializeAsync() => _host = await PaymentsHost.StartAsync();

    public async Task DisposeAsync() => await _host.DisposeAsync();

    [Fact]
    public async Task CreateAccount_ValidRequest_Returns201WithLocationAndZeroBalance()
    {
        using var client = _host.Client();
        using var response = await PaymentsHost.PostAsync(client, "/accounts", new { name = "alice", currency = "EUR" });

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var account = await response.Content.ReadFromJsonAsync<Account>();
        Assert.NotNull(account);
        Assert.StartsWith("acc_", account.Id, StringComparison.Ordinal);
        Assert.Equal(("alice", "EUR", 0L), (account.Name, account.Currency, account.Balance));
        Assert.Equal($"/accounts/{account.Id}", response.Headers.Location?.OriginalString);
        Assert.Equal(account, await PaymentsHost.GetAccountAsync(client, account.Id));
    }

    [Fact]
    public async Task Deposit_PositiveAmount_Returns201WithNewBalance()
    {
        using var client = _host.Client();
        var account = await PaymentsHost.CreateAccountAsync(client, deposit: 1000);

        using var response = await PaymentsHost.PostAsync(client, $"/accounts/{account.Id}/deposits", new { amount = 500 });

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var deposit = await response.Content.ReadFromJsonAsync<Deposit>();
        Assert.Equal(1500, deposit!.Balance);
        Assert.Equal(1500, (await PaymentsHost.GetAccountAsync(client, account.Id)).Balance);
        Assert.True((await _host.Ledger.CheckAsync()).IsBalanced);
    }

    [Fact]
    public async Task Payment_SufficientFunds_Returns201AndMovesMoney()
    {
        using var client = _host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");

        using var response = await PaymentsHost.PostAsync(client, "/payments", new { from = alice.Id, to = bob.Id, amount = 250, currency = "EUR" });

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var payment = await response.Content.ReadFromJsonAsync<Payment>();
        Assert.Equal("succeeded", payment!.Status);
        Assert.Equal($"/payments/{payment.Id}", response.Headers.Location?.OriginalString);
        Assert.Equal(payment, await client.GetFromJsonAsync<Payment>($"/payments/{payment.Id}"));
        Assert.Equal(750, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
        Assert.Equal(250, (await PaymentsHost.GetAccountAsync(client, bob.Id)).Balance);
        Assert.True((await _host.Ledger.CheckAsync()).IsBalanced);
    }

    [Fact]
    public async Task Request_WithoutApiKey_Returns401Problem()
    {
        using var client = _host.Client(apiKey: null);

        using var response = await PaymentsHost.PostAsync(client, "/accounts", new { name = "alice", currency = "EUR" });

        await AssertProblemAsync(response, HttpStatusCode.Unauthorized, "missing-api-key");
    }

    [Fact]
    public async Task Request_WithUnknownApiKey_Returns401Problem()
    {
        using var client = _host.Client(apiKey: "sk_live_nobody");

        using var response = await client.GetAsync("/accounts/acc_1");

        await AssertProblemAsync(response, HttpStatusCode.Unauthorized, "unknown-api-key");
    }

    [Fact]
    public async Task Post_WithoutIdempotencyKey_Returns400KeyMissing()
    {
        using var client = _host.Client();

        using var response = await PaymentsHost.PostAsync(client, "/accounts", new { name = "alice", currency = "EUR" }, key: null);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.EndsWith("idempotency-key-missing", (await ProblemAsync(response)).GetProperty("type").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task GetAccountAndPayment_OtherTenant_Return404()
    {
        using var a = _host.Client(PaymentsHost.TenantA);
        using var b = _host.Client(PaymentsHost.TenantB);
        var alice = await PaymentsHost.CreateAccountAsync(a, "alice", deposit: 100);
        var bob = await PaymentsHost.CreateAccountAsync(a, "bob");
        using var paid = await PaymentsHost.PostAsync(a, "/payments", new { from = alice.Id, to = bob.Id, amount = 10, currency = "EUR" });
        var payment = await paid.Content.ReadFromJsonAsync<Payment>();

        await AssertProblemAsync(await b.GetAsync($"/accounts/{alice.Id}"), HttpStatusCode.NotFound, "account-not-found");
        await AssertProblemAsync(await b.GetAsync($"/payments/{payment!.Id}"), HttpStatusCode.NotFound, "payment-not-found");
    }

    [Fact]
    public async Task Payment_FromOtherTenantsAccount_Returns404AndMovesNothing()
    {
        using var a = _host.Client(PaymentsHost.TenantA);
        using var b = _host.Client(PaymentsHost.TenantB);
        var alice = await PaymentsHost.CreateAccountAsync(a, "alice", deposit: 100);
        var mallory = await PaymentsHost.CreateAccountAsync(b, "mallory");

        using var response = await PaymentsHost.PostAsync(b, "/payments", new { from = alice.Id, to = mallory.Id, amount = 100, currency = "EUR" });

        await AssertProblemAsync(response, HttpStatusCode.NotFound, "account-not-found");
        Assert.Equal(100, (await PaymentsHost.GetAccountAsync(a, alice.Id)).Balance);
        using var deposit = await PaymentsHost.PostAsync(b, $"/accounts/{alice.Id}/deposits", new { amount = 5 });
        await AssertProblemAsync(deposit, HttpStatusCode.NotFound, "account-not-found");
    }

    [Fact]
    public async Task Payment_InsufficientFunds_Returns422ProblemAndMovesNothing()
    {
        using var client = _host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 100);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");

        using var response = await PaymentsHost.PostAsync(client, "/payments", new { from = alice.Id, to = bob.Id, amount = 101, currency = "EUR" });

        await AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "insufficient-funds");
        Assert.Equal(100, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
        Assert.Equal(0, (await PaymentsHost.GetAccountAsync(client, bob.Id)).Balance);
        Assert.Equal(0, await _host.Ledger.CountPaymentsAsync());
    }

    [Fact]
    public async Task Payment_CurrencyMismatch_Returns422Problem()
    {
        using var client = _host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", "EUR", deposit: 100);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob", "USD");

        using var response = await PaymentsHost.PostAsync(client, "/payments", new { from = alice.Id, to = bob.Id, amount = 10, currency = "EUR" });

        await AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "currency-mismatch");
        Assert.Equal(100, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-250)]
    public async Task PaymentAndDeposit_NonPositiveAmount_Return400Validation(long amount)
    {
        using var client = _host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 100);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");

        using var payment = await PaymentsHost.PostAsync(client, "/payments", new { from = alice.Id, to = bob.Id, amount, currency = "EUR" });
        using var deposit = await PaymentsHost.PostAsync(client, $"/accounts/{alice.Id}/deposits", new { amount });

        var problem = await AssertProblemAsync(payment, HttpStatusCode.BadRequest, "validation-failed");
        Assert.True(problem.GetProperty("errors").TryGetProperty("amount", out _));
        await AssertProblemAsync(deposit, HttpStatusCode.BadRequest, "validation-failed");
        Assert.Equal(100, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
    }

    [Fact]
    public async Task CreateAccount_BadCurrency_Returns400Validation()
    {
        using var client = _host.Client();

        using var response = await PaymentsHost.PostAsync(client, "/accounts", new { name = "alice", currency = "euro" });

        var problem = await AssertProblemAsync(response, HttpStatusCode.BadRequest, "validation-failed");
        Assert.True(problem.GetProperty("errors").TryGetProperty("currency", out _));
    }

    [Fact]
    public async Task Balance_BelowZero_IsRefusedByTheCheckConstraint()
    {
        using var client = _host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 100);
        await using var connection = await _host.Ledger.Dialect.OpenAsync(CancellationToken.None);
        await using var command = connection.CreateCommand();
        command.CommandText = $"UPDATE accounts SET balance = -1 WHERE id = '{alice.Id}'";

        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => command.ExecuteNonQueryAsync());
    }

    internal static async Task<JsonElement> ProblemAsync(HttpResponseMessage response)
    {
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    internal static async Task<JsonElement> AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string type)
    {
        Assert.Equal(status, response.StatusCode);
        var problem = await ProblemAsync(response);
        Assert.Equal(PaymentProblems.TypeBase + type, problem.GetProperty("type").GetString());
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrEmpty(problem.GetProperty("title").GetString()));
        return problem;
    }
}
