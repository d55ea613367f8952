using System.Data;
using System.Data.Common;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Oncely.AspNetCore.Tests;

/// <summary>Endpoint metadata and middleware paths of one-commit endpoints that need no SQL store.</summary>
public sealed class OneCommitEndpointTests
{
    [Fact]
    public void Plan_IdempotentAttributeOneCommitReservation_IsOneCommit()
    {
        Assert.True(EndpointOf(new IdempotentAttribute { OneCommitReservation = true }).OneCommit);
        Assert.False(EndpointOf(new IdempotentAttribute()).OneCommit);
        Assert.True(EndpointOf(new IdempotentAttribute(), OneCommitReservationMetadata.Instance).OneCommit);
    }

    [Fact]
    public async Task OneCommit_HandlerAnswersWithoutReserving_NothingRecordedAndTheRetryRunsAgain()
    {
        var runs = 0;
        await using var app = await StartAsync(async context =>
        {
            runs++;
            Assert.False(context.GetIdempotencyExecution()!.IsReserved);
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            await context.Response.WriteAsync("invalid");
        });

        using var first = await PostAsync(app, "k1");
        using var retry = await PostAsync(app, "k1");

        Assert.Equal(HttpStatusCode.BadRequest, first.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, retry.StatusCode);
        Assert.False(retry.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(2, runs);
    }

    [Fact]
    public async Task OneCommit_HandlerAnswersSuccessWithoutReserving_LoggedAsAnError()
    {
        var logs = new CapturingLoggerProvider();
        await using var app = await StartAsync(
            async context =>
            {
                context.Response.StatusCode = StatusCodes.Status201Created;
                await context.Response.WriteAsync("charged, but nothing reserved");
            },
            logs);

        using var first = await PostAsync(app, "k-unreserved");

        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        var logged = Assert.Single(logs.Entries, e => e.Id.Id == IdempotencyEventIds.OneCommitAnsweredWithoutReserving);
        Assert.Equal(LogLevel.Error, logged.Level);
        Assert.Contains("ReserveInTransactionAsync", logged.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OneCommit_ReservationMeetsAHeldKeyWithNothingCommitted_409InProgress()
    {
        await using var app = await StartAsync(_ => throw new IdempotencyReservationConflictException("held by another transaction (test)"));

        using var response = await PostAsync(app, "k2");

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Contains("idempotency-request-in-progress", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task OneCommit_StoreFailsUnderTheReservation_503AndNothingRan()
    {
        await using var app = await StartAsync(_ => throw new IdempotencyStoreUnavailableException("connection refused (test)"));

        using var response = await PostAsync(app, "k3");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
    }

    [Fact]
    public async Task OneCommit_InMemoryStore_ReserveInTransactionRefusedWithAClearError()
    {
        var store = new InMemoryIdempotencyStore(TimeProvider.System);
        var executor = new IdempotencyExecutor(store, new IdempotencyEngineOptions());
        var execution = (await executor.BeginOneCommitAsync(new IdempotencyRecordId("t", "POST /x", "k"), new string('a', 64))).Execution!;
        await using var transaction = new DetachedTransaction();

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => execution.ReserveInTransactionAsync(transaction).AsTask());

        Assert.Contains("cannot write inside a transaction", error.Message, StringComparison.Ordinal);
    }

    private static IdempotencyEndpoint EndpointOf(params object[] metadata)
        => IdempotencyEndpoint.Describe(new RouteEndpoint(_ => Task.CompletedTask, RoutePatternFactory.Parse("/x"), 0, new EndpointMetadataCollection(metadata), "x"), new IdempotencyOptions())!;

    private static async Task<WebApplication> StartAsync(RequestDelegate handler, CapturingLoggerProvider? logs = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        if (logs is not null)
        {
            builder.Logging.AddProvider(logs);
        }

        builder.Services.AddIdempotency();
        var app = builder.Build();
        app.UseIdempotency();
        app.MapPost("/x", handler).RequireIdempotencyKey().AllowAnonymousIdempotency().WithOneCommitReservation();
        await app.StartAsync();
        return app;
    }

    private static Task<HttpResponseMessage> PostAsync(WebApplication app, string key)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/x") { Content = new StringContent("{}", Encoding.UTF8, "application/json") };
        request.Headers.Add("Idempotency-Key", key);
        return app.GetTestClient().SendAsync(request);
    }

    private sealed class DetachedTransaction : DbTransaction
    {
        public override IsolationLevel IsolationLevel => IsolationLevel.ReadCommitted;

        protected override DbConnection? DbConnection => null;

        public override void Commit()
        {
        }

        public override void Rollback()
        {
        }
    }
}
