using System.Net.Http.Headers;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Payments;

namespace Oncely.Console.Tests;

/// <summary>
/// The Payments sample (<see cref="PaymentsApp.Build"/>) on Kestrel at a free loopback port, in the Development
/// environment (for its stuck-key route), with its ledger and Oncely's records in a throw-away SQLite file.
/// </summary>
public sealed class PaymentsServer : IAsyncDisposable
{
    public const string TenantA = "sk_test_tenant_a";
    public const string Operator = "sk_test_operator";
    public const string ConsolePath = "/admin/idempotency/console/";

    private readonly WebApplication _app;
    private readonly string _directory;

    private PaymentsServer(WebApplication app, string directory)
    {
        _app = app;
        _directory = directory;
    }

    public Uri Address => new(_app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());

    private string Database => Path.Combine(_directory, "payments.db");

    public static async Task<PaymentsServer> StartAsync()
    {
        var directory = Path.Combine(Path.GetTempPath(), "console-tests-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(directory);
        string[] args =
        [
            $"--contentRoot={directory}",
            "--environment=Development",
            $"--Payments:ApiKeys:{TenantA}=tenant-a",
            $"--Payments:OperatorApiKeys:{Operator}=operator",
            "--Payments:Database=Sqlite",
            $"--ConnectionStrings:Payments=Data Source={Path.Combine(directory, "payments.db")}",
        ];
        var app = PaymentsApp.Build(args, builder =>
        {
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Logging.ClearProviders();
        });
        await app.StartAsync();
        return new PaymentsServer(app, directory);
    }

    public HttpClient Client(string? apiKey)
    {
        var client = new HttpClient { BaseAddress = Address };
        if (apiKey is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }

        return client;
    }

    /// <summary>POSTs raw JSON, with an Idempotency-Key when given.</summary>
    public static Task<HttpResponseMessage> PostJsonAsync(HttpClient client, string path, string json, string? key = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (key is not null)
        {
            request.Headers.Add("Idempotency-Key", key);
        }

        return client.SendAsync(request);
    }

    /// <summary>How many accounts the ledger holds for the tenant under that name: the effect a retry must make once.</summary>
    public async Task<long> CountAccountsAsync(string tenant, string name)
    {
        await using var connection = new SqliteConnection($"Data Source={Database}");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*) FROM accounts WHERE tenant = $tenant AND name = $name";
        command.Parameters.AddWithValue("$tenant", tenant);
        command.Parameters.AddWithValue("$name", name);
        return (long)(await command.ExecuteScalarAsync())!;
    }

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
