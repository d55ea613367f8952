using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Oncely.AspNetCore;
using Oncely.PostgreSql.Tests.Infrastructure;

namespace Oncely.PostgreSql.Tests;

/// <summary>
/// Issue 9, item 16a: PostgreSQL's btree index entry limit (about 2704 bytes for the UNIQUE (tenant, operation, key)
/// index) is checked at start-up against <see cref="IdempotencyOptions.MaxKeyLength"/>, instead of turning long keys
/// into <c>503</c>s at run time.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlStoreLimitsTests(PostgresFixture fixture) : StoreTestBase(fixture)
{
    [Fact]
    public void MaxKeyLength_PostgreSqlStore_Is1024()
        => Assert.Equal(1024, ((IIdempotencyStoreLimits)Store).MaxKeyLength);

    [Fact]
    public async Task StartAsync_MaxKeyLengthAboveWhatTheIndexHolds_RefusedWithWhatToChange()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => StartAppAsync(maxKeyLength: 4096));

        Assert.Contains("MaxKeyLength is 4096", error.Message, StringComparison.Ordinal);
        Assert.Contains("Set MaxKeyLength to 1024 or less", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Http_KeyAtTheStoreLimit_ExecutesOnceAndReplays()
    {
        await using var app = await StartAppAsync(maxKeyLength: 1024);
        var key = new string('k', 1000) + Guid.NewGuid().ToString("N")[..24];
        Assert.Equal(1024, key.Length);

        using var first = await app.GetTestClient().SendAsync(Post(key));
        using var retry = await app.GetTestClient().SendAsync(Post(key));

        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.Equal("true", Assert.Single(retry.Headers.GetValues("Idempotent-Replayed")));
        Assert.Equal(await first.Content.ReadAsStringAsync(), await retry.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task TryReserveAsync_KeyAtLimitWithLongTenantAndOperation_Acquires()
    {
        // The bound leaves room for generous tenant ids and route patterns next to the longest key.
        var id = new IdempotencyRecordId(new string('t', 400), "POST /" + new string('o', 800), new string('k', 1024));

        var reserved = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        Assert.Equal(ReservationOutcome.Acquired, reserved.Outcome);
        Assert.True(await Store.TryCompleteAsync(id, reserved.Record.FencingToken, new IdempotentResponse(201, [], new byte[] { 1 }), Hour, default));
        Assert.Equal(ReservationOutcome.Completed, (await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default)).Outcome);
    }

    [Fact]
    public async Task TryReserveAsync_IdLargerThanTheIndexHolds_ClearArgumentExceptionNotAnOutage()
    {
        // Random text does not compress, so the index entry really is this large.
        var hugeTenant = string.Concat(Enumerable.Range(0, 125).Select(_ => Guid.NewGuid().ToString("N")));
        var id = new IdempotencyRecordId(hugeTenant, "POST /payments", Guid.NewGuid().ToString());

        var error = await Assert.ThrowsAsync<ArgumentException>(async () => await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default));

        Assert.Contains("too large for the PostgreSQL store's unique index", error.Message, StringComparison.Ordinal);
        Assert.Contains($"tenant {hugeTenant.Length} bytes", error.Message, StringComparison.Ordinal);
        Assert.IsNotType<IdempotencyStoreUnavailableException>(error);
    }

    private async Task<WebApplication> StartAppAsync(int maxKeyLength)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        builder.Services.AddIdempotency(o => o.MaxKeyLength = maxKeyLength).UsePostgreSql(o => o.DataSource = DataSource);
        var app = builder.Build();
        app.UseIdempotency();
        app.MapPost("/payments", (HttpContext context) => Results.Created("/payments/1", new { key = context.GetIdempotencyExecution()!.Id.Key.Length }))
            .RequireIdempotencyKey()
            .AllowAnonymousIdempotency();
        try
        {
            await app.StartAsync();
            return app;
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
    }

    private static HttpRequestMessage Post(string key)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/payments") { Content = new StringContent("{\"amount\":1}", System.Text.Encoding.UTF8, "application/json") };
        request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
        return request;
    }
}
