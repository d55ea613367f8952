using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Payments.Ledger;

namespace Payments.Tests;

/// <summary>The real app (<see cref="PaymentsApp.Build"/>) on a TestServer, with its own temp SQLite file or a given PostgreSQL database.</summary>
public sealed class PaymentsHost : IAsyncDisposable
{
    public const string TenantA = "sk_test_tenant_a";
    public const string TenantB = "sk_test_tenant_b";
    public const string Operator = "sk_test_operator";

    /// <summary>The simulated card provider's signing secret (the demo's).</summary>
    public const string WebhookSecret = "whsec_KWiWa/1lu1ud7XCItj0VAOwnQsQvMcMLSZi/V0+1RQk=";

    private readonly WebApplication _app;
    private readonly string _directory;

    private PaymentsHost(WebApplication app, string directory)
    {
        _app = app;
        _directory = directory;
    }

    public LedgerRepository Ledger => _app.Services.GetRequiredService<LedgerRepository>();

    public IServiceProvider Services => _app.Services;

    /// <summary>The host's own folder: its SQLite file (<c>payments.db</c>) and, beside it, the key ring (<c>payments-keys</c>).</summary>
    public string DataDirectory => _directory;

    public static Task<PaymentsHost> StartAsync(Action<IServiceCollection> services) => StartAsync(services: services, idempotency: true);

    public static async Task<PaymentsHost> StartAsync(bool idempotency = true, string? postgreSql = null, string? contentRoot = null, Action<IServiceCollection>? services = null, bool? oneCommit = true, bool kestrel = false, string? redis = null, string environment = "Production", string? keyRing = null)
    {
        var directory = Path.Combine(Path.GetTempPath(), "payments-tests-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(directory);
        var args = new List<string>
        {
            $"--contentRoot={contentRoot ?? directory}",
            $"--environment={environment}",
            $"--Payments:Idempotency={idempotency}",
            $"--Payments:ApiKeys:{TenantA}=tenant-a",
            $"--Payments:ApiKeys:{TenantB}=tenant-b",
            $"--Payments:Webhooks:Senders:card-provider:Secrets:0={WebhookSecret}",
            $"--Payments:OperatorApiKeys:{Operator}=operator",
        };
        if (oneCommit is { } commitOnce)
        {
            args.Add($"--Payments:OneCommit={commitOnce}");
        }

        if (keyRing is not null)
        {
            // Instances that share a database share the Data Protection key ring too, or they cannot open each other's answers.
            args.Add($"--Payments:KeyRing={keyRing}");
        }

        if (redis is not null)
        {
            // The idempotency records in Redis; the ledger stays in SQL.
            args.AddRange(["--Payments:IdempotencyStore=Redis", $"--Payments:RedisConnection={redis}"]);
        }

        args.AddRange(postgreSql is null
            ? ["--Payments:Database=Sqlite", $"--ConnectionStrings:Payments=Data Source={Path.Combine(directory, "payments.db")}"]
            : ["--Payments:Database=PostgreSql", $"--ConnectionStrings:Payments={postgreSql}"]);
        var app = PaymentsApp.Build([.. args], builder =>
        {
            if (kestrel)
            {
                builder.WebHost.UseUrls("http://127.0.0.1:0");
            }
            else
            {
                builder.WebHost.UseTestServer();
            }

            builder.Logging.ClearProviders();
            services?.Invoke(builder.Services);
        });
        await app.StartAsync();
        return new PaymentsHost(app, directory);
    }

    /// <summary>The Kestrel address, for a host started with <c>kestrel: true</c>.</summary>
    public Uri Address => new(_app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features
        .Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()!.Addresses.First());

    public HttpClient Client(string? apiKey = TenantA)
    {
        var client = _app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>() is TestServer server
            ? server.CreateClient()
            : new HttpClient { BaseAddress = Address };
        if (apiKey is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }

        return client;
    }

    public static Task<HttpResponseMessage> PostAsync(HttpClient client, string path, object body, string? key = "new")
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body) };
        if (key is not null)
        {
            request.Headers.Add("Idempotency-Key", key == "new" ? Guid.NewGuid().ToString() : key);
        }

        return client.SendAsync(request);
    }

    public static async Task<Account> CreateAccountAsync(HttpClient client, string name = "alice", string currency = "EUR", long deposit = 0)
    {
        using var created = await PostAsync(client, "/accounts", new { name, currency });
        created.EnsureSuccessStatusCode();
        var account = (await created.Content.ReadFromJsonAsync<Account>())!;
        if (deposit > 0)
        {
            using var deposited = await PostAsync(client, $"/accounts/{account.Id}/deposits", new { amount = deposit });
            deposited.EnsureSuccessStatusCode();
            account = account with { Balance = deposit };
        }

        return account;
    }

    public static async Task<Account> GetAccountAsync(HttpClient client, string id)
        => (await client.GetFromJsonAsync<Account>($"/accounts/{id}"))!;

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
