using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Oncely;
using Oncely.Testing;

namespace Payments.Tests;

/// <summary>
/// What an operator sees in a trace of the sample's one-commit payment: Oncely's request span, its read, and the
/// reservation and completion made inside the payment's own SQLite transaction.
/// </summary>
public sealed class TracingTests : IDisposable
{
    private static readonly ActivitySource Test = new("Payments.Tests.Tracing");

    private readonly TraceCapture _traces = new(Test.Name);

    public void Dispose() => _traces.Dispose();

    [Fact]
    public async Task Payment_OneCommit_SpansShowTheReadAndTheTransactionalReserveAndComplete()
    {
        // The test's own span flows into the server, so this test reads only its own traces.
        await using var host = await PaymentsHost.StartAsync(services => services.Configure<TestServerOptions>(o => o.PreserveExecutionContext = true));
        using var client = host.Client();
        var from = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var to = await PaymentsHost.CreateAccountAsync(client, "bob");
        var payment = new { from = from.Id, to = to.Id, amount = 250, currency = "EUR" };
        var key = Guid.NewGuid().ToString();

        ActivityTraceId paid, replayed;
        using (var root = Test.StartActivity("pay")!)
        {
            using var response = await PaymentsHost.PostAsync(client, "/payments", payment, key);
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
            paid = root.TraceId;
        }

        using (var root = Test.StartActivity("retry")!)
        {
            using var response = await PaymentsHost.PostAsync(client, "/payments", payment, key);
            Assert.True(response.Headers.Contains("Idempotent-Replayed"));
            replayed = root.TraceId;
        }

        var first = _traces.InTrace(paid);
        var request = Assert.Single(first, s => s.OperationName == IdempotencyDiagnostics.RequestActivityName);
        Assert.Equal("idempotent POST /payments", request.DisplayName);
        Assert.Equal("executed", request.GetTagItem(IdempotencyDiagnostics.OutcomeTag));
        Assert.Equal("SqliteIdempotencyStore", request.GetTagItem(IdempotencyDiagnostics.StoreTag));
        var calls = first.Where(s => s.OperationName.StartsWith(IdempotencyDiagnostics.StoreActivityPrefix, StringComparison.Ordinal)).ToArray();
        Assert.Equal(["oncely.store.get", "oncely.store.reserve_in_transaction", "oncely.store.complete_in_transaction"], calls.Select(c => c.OperationName));
        Assert.All(calls, c => Assert.Equal(request.SpanId, c.ParentSpanId));
        Assert.Equal("acquired", calls[1].GetTagItem(IdempotencyDiagnostics.ReservationTag));

        var retry = _traces.InTrace(replayed);
        var replay = Assert.Single(retry, s => s.OperationName == IdempotencyDiagnostics.RequestActivityName);
        Assert.Equal("replayed", replay.GetTagItem(IdempotencyDiagnostics.OutcomeTag));
        Assert.Equal(["oncely.store.get"], retry.Where(s => s.ParentSpanId == replay.SpanId).Select(s => s.OperationName));
        Assert.Equal(request.GetTagItem(IdempotencyDiagnostics.KeyHashTag), replay.GetTagItem(IdempotencyDiagnostics.KeyHashTag));
    }
}
