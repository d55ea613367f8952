using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Oncely.AspNetCore.Tests;

/// <summary><c>AddIdempotency(configuration.GetSection("Oncely"))</c>: every option bound, strictly, and validated at start.</summary>
public sealed class IdempotencyConfigurationTests
{
    private static async Task<WebApplication> StartAsync(IDictionary<string, string?> settings, Action<IdempotencyOptions>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddIdempotency(builder.Configuration.GetSection("Oncely"), configure);
        var app = builder.Build();
        app.UseIdempotency();
        await app.StartAsync();
        return app;
    }

    private static async Task<Exception> StartFailsAsync(IDictionary<string, string?> settings)
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(async () => await (await StartAsync(settings)).DisposeAsync());
        return error;
    }

    [Fact]
    public async Task AddIdempotency_EverySettingInConfiguration_IsBound()
    {
        await using var app = await StartAsync(new Dictionary<string, string?>
        {
            ["Oncely:Lease"] = "00:00:45",
            ["Oncely:RenewLease"] = "false",
            ["Oncely:LeaseRenewalInterval"] = "00:00:05",
            ["Oncely:Expiration"] = "2.00:00:00",
            ["Oncely:StoreTimeout"] = "00:00:02",
            ["Oncely:CompletionRetries"] = "5",
            ["Oncely:CompletionRetryDelay"] = "00:00:00.250",
            ["Oncely:InProgressWait"] = "00:00:03",
            ["Oncely:InProgressPollInterval"] = "00:00:00.050",
            ["Oncely:ReservationLockTimeout"] = "00:00:07",
            ["Oncely:AcceptAliasHeader"] = "false",
            ["Oncely:MaxKeyLength"] = "128",
            ["Oncely:MaxRequestBodySize"] = "2048",
            ["Oncely:MaxResponseBodySize"] = "4096",
            ["Oncely:FingerprintHeaders:0"] = "X-Account",
            ["Oncely:ReplayedHeaders:0"] = "X-Request-Id",
            ["Oncely:KeyReusedStatusCode"] = "409",
            ["Oncely:StoreServerErrors"] = "true",
            ["Oncely:RetryableStatusCodes:0"] = "423",
            ["Oncely:InProgressRetryAfter"] = "00:00:02",
            ["Oncely:StoreUnavailableRetryAfter"] = "00:00:09",
            ["Oncely:ProblemTypeBaseUri"] = "https://payments.example/problems/",
            ["Oncely:AuditPayloadLimit"] = "512",
            ["Oncely:PurgeInterval"] = "00:01:00",
            ["Oncely:PurgeBatchSize"] = "100",
            ["Oncely:AuditRetention"] = "90.00:00:00",
        });

        var options = app.Services.GetRequiredService<IOptions<IdempotencyOptions>>().Value;
        Assert.Equal(TimeSpan.FromSeconds(45), options.Lease);
        Assert.False(options.RenewLease);
        Assert.Equal(TimeSpan.FromSeconds(5), options.LeaseRenewalInterval);
        Assert.Equal(TimeSpan.FromDays(2), options.Expiration);
        Assert.Equal(TimeSpan.FromSeconds(2), options.StoreTimeout);
        Assert.Equal(5, options.CompletionRetries);
        Assert.Equal(TimeSpan.FromMilliseconds(250), options.CompletionRetryDelay);
        Assert.Equal(TimeSpan.FromSeconds(3), options.InProgressWait);
        Assert.Equal(TimeSpan.FromMilliseconds(50), options.InProgressPollInterval);
        Assert.Equal(TimeSpan.FromSeconds(7), options.ReservationLockTimeout);
        Assert.False(options.AcceptAliasHeader);
        Assert.Equal(128, options.MaxKeyLength);
        Assert.Equal(2048, options.MaxRequestBodySize);
        Assert.Equal(4096, options.MaxResponseBodySize);
        Assert.Contains("X-Account", options.FingerprintHeaders);
        Assert.Equal(["Content-Type", "ETag", "Location", "X-Request-Id"], options.ReplayedHeaders.Order(StringComparer.Ordinal));
        Assert.Equal(409, options.KeyReusedStatusCode);
        Assert.True(options.StoreServerErrors);
        Assert.Equal([408, 409, 423, 425, 429], options.RetryableStatusCodes.Order());
        Assert.Equal(TimeSpan.FromSeconds(2), options.InProgressRetryAfter);
        Assert.Equal(TimeSpan.FromSeconds(9), options.StoreUnavailableRetryAfter);
        Assert.Equal("https://payments.example/problems/", options.ProblemTypeBaseUri);
        var maintenance = app.Services.GetRequiredService<IOptions<IdempotencyMaintenanceOptions>>().Value;
        Assert.Equal(512, maintenance.AuditPayloadLimit);
        Assert.Equal(TimeSpan.FromMinutes(1), maintenance.PurgeInterval);
        Assert.Equal(100, maintenance.PurgeBatchSize);
        Assert.Equal(TimeSpan.FromDays(90), maintenance.AuditRetention);
        var executor = app.Services.GetRequiredService<IdempotencyExecutor>();
        Assert.Equal(TimeSpan.FromSeconds(45), executor.Lease);
        Assert.Equal(TimeSpan.FromDays(2), executor.Expiration);
    }

    [Fact]
    public async Task AddIdempotency_PoliciesInConfigurationAndCode_MergeIntoOnePolicyCodeLast()
    {
        await using var app = await StartAsync(
            new Dictionary<string, string?>
            {
                ["Oncely:Lease"] = "00:00:20",
                ["Oncely:Policies:payments:Lease"] = "00:02:00",
                ["Oncely:Policies:payments:Expiration"] = "7.00:00:00",
                ["Oncely:Policies:payments:RetryableStatusCodes:0"] = "404",
                ["Oncely:Policies:payments:MaxResponseBodySize"] = "100",
                ["Oncely:Policies:webhooks:StoreServerErrors"] = "true",
            },
            o =>
            {
                o.Lease = TimeSpan.FromSeconds(25);
                o.AddPolicy("Payments", p => p.MaxRequestBodySize = 64);
            });

        var options = app.Services.GetRequiredService<IOptions<IdempotencyOptions>>().Value;
        Assert.Equal(TimeSpan.FromSeconds(25), options.Lease);
        Assert.Equal(2, options.Policies.Count);
        var payments = options.Policies["payments"];
        Assert.Equal(TimeSpan.FromMinutes(2), payments.Lease);
        Assert.Equal(TimeSpan.FromDays(7), payments.Expiration);
        Assert.Equal([404], payments.RetryableStatusCodes!);
        Assert.Equal(100, payments.MaxResponseBodySize);
        Assert.Equal(64, payments.MaxRequestBodySize);
        Assert.Null(payments.KeyReusedStatusCode);
        Assert.True(options.Policies["WEBHOOKS"].StoreServerErrors);
    }

    [Fact]
    public async Task Start_MisspelledSetting_FailsNamingIt()
    {
        var error = await StartFailsAsync(new Dictionary<string, string?> { ["Oncely:Leese"] = "00:01:00" });

        Assert.Contains("Leese", error.Message, StringComparison.Ordinal);
        Assert.Contains("'Oncely'", error.Message, StringComparison.Ordinal);
        Assert.Contains("IdempotencyOptions setting", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_MisspelledPolicySetting_FailsNamingIt()
    {
        var error = await StartFailsAsync(new Dictionary<string, string?> { ["Oncely:Policies:payments:Leese"] = "00:01:00" });

        Assert.Contains("'Leese'", error.Message, StringComparison.Ordinal);
        Assert.Contains("IdempotencyEndpointPolicy", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Oncely:Lease", "30s")]
    [InlineData("Oncely:Policies:payments:Expiration", "one day")]
    [InlineData("Oncely:MaxRequestBodySize", "1MB")]
    public async Task Start_ValueThatDoesNotConvert_FailsNamingTheKeyAndTheFormat(string key, string value)
    {
        var error = await StartFailsAsync(new Dictionary<string, string?> { [key] = value });

        Assert.Contains($"'{key}'", error.Message, StringComparison.Ordinal);
        Assert.Contains($"'{value}'", error.Message, StringComparison.Ordinal);
        Assert.Contains("\"hh:mm:ss\"", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Oncely:Expiration", "00:00:10", "Expiration (00:00:10) must not be shorter than Lease")]
    [InlineData("Oncely:KeyReusedStatusCode", "500", "KeyReusedStatusCode must be a 4xx status")]
    [InlineData("Oncely:RetryableStatusCodes:0", "503", "RetryableStatusCodes may only hold 4xx statuses (it holds 503)")]
    [InlineData("Oncely:Policies:payments:Lease", "-00:00:01", "policy 'payments': Lease must be positive")]
    [InlineData("Oncely:Policies:payments:Expiration", "00:00:01", "policy 'payments': Expiration (00:00:01) must not be shorter than Lease (00:00:30)")]
    [InlineData("Oncely:Policies:payments:MaxRequestBodySize", "-1", "policy 'payments': MaxRequestBodySize must not be negative")]
    [InlineData("Oncely:Policies:payments:RetryableStatusCodes:0", "200", "policy 'payments': RetryableStatusCodes may only hold 4xx statuses")]
    public async Task Start_ValueTheOptionsRefuse_FailsSayingWhatToChange(string key, string value, string message)
    {
        var error = await StartFailsAsync(new Dictionary<string, string?> { [key] = value });

        var validation = Assert.IsType<OptionsValidationException>(error);
        Assert.Contains(message, validation.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_PolicyWithALeaseItsInheritedRenewalIntervalCannotServe_FailsSayingWhatToChange()
    {
        var error = await StartFailsAsync(new Dictionary<string, string?>
        {
            ["Oncely:LeaseRenewalInterval"] = "00:00:10",
            ["Oncely:Policies:quick:LeaseRenewalInterval"] = "00:00:10",
            ["Oncely:Policies:quick:Lease"] = "00:00:05",
        });

        Assert.Contains("policy 'quick': LeaseRenewalInterval must be positive and shorter than Lease (00:00:05)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_MisspelledMaintenanceSetting_FailsNamingIt()
    {
        var error = await StartFailsAsync(new Dictionary<string, string?> { ["Oncely:PurgeIntervall"] = "00:01:00" });

        Assert.Contains("PurgeIntervall", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Oncely:AuditRetention", "00:00:00", "AuditRetention must be positive")]
    [InlineData("Oncely:PurgeBatchSize", "0", "PurgeInterval and PurgeBatchSize must be positive")]
    [InlineData("Oncely:PurgeInterval", "365.00:00:00", "PurgeInterval must be at most 49 days")]
    [InlineData("Oncely:AuditPayloadLimit", "-1", "AuditPayloadLimit must not be negative")]
    public async Task Start_MaintenanceValueTheOptionsRefuse_FailsSayingWhatToChange(string key, string value, string message)
    {
        var error = await StartFailsAsync(new Dictionary<string, string?> { [key] = value });

        var validation = Assert.IsType<OptionsValidationException>(error);
        Assert.Contains(message, validation.Message, StringComparison.Ordinal);
    }
}
