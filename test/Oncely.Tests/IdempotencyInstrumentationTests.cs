using System.Diagnostics;
using Oncely.Testing;

namespace Oncely.Tests;

/// <summary>
/// Spans and metrics of the transport-agnostic path (<see cref="IdempotencyExecutor.ExecuteAsync"/>, as message consumers
/// use it), read through the OpenTelemetry SDK's in-memory exporter and a meter listener.
/// </summary>
public sealed class IdempotencyInstrumentationTests : IDisposable
{
    private readonly TraceCapture _traces = new();
    private readonly TestMeterFactory _meters = new();
    private readonly MetricCapture _metrics;
    private readonly IdempotencyExecutor _executor;
    // Letters only: the operation is a metric tag, and a random hex id sometimes holds 13 to 19 digits in a row that pass
    // the Luhn check, which the tag rightly masks as a card number; the tests compare the tag with this name.
    private readonly string _operation = "orders-consumer-" + string.Concat(Guid.NewGuid().ToString("N").Select(c => (char)(char.IsAsciiDigit(c) ? 'g' + (c - '0') : c)));

    public IdempotencyInstrumentationTests()
    {
        _metrics = new MetricCapture(_meters);
        _executor = new IdempotencyExecutor(new InMemoryIdempotencyStore(), new IdempotencyEngineOptions(), meterFactory: _meters);
    }

    public void Dispose()
    {
        _traces.Dispose();
        _metrics.Dispose();
        _meters.Dispose();
    }

    private IdempotencyRecordId Message(string key) => new("tenant-secret-7", _operation, key);

    private static ValueTask<IdempotentResponse> Ok(IdempotencyExecution execution, CancellationToken cancellationToken)
        => ValueTask.FromResult(new IdempotentResponse(0, [], "done"u8.ToArray()));

    [Fact]
    public async Task ExecuteAsync_NewMessage_RequestSpanExecutedWithReserveAndCompleteSpansInside()
    {
        await _executor.ExecuteAsync(Message("message-1"), "fp", Ok);

        var request = Assert.Single(_traces.RequestsOf(_operation));
        Assert.Equal("idempotent " + _operation, request.DisplayName);
        Assert.Equal("executed", request.GetTagItem(IdempotencyDiagnostics.OutcomeTag));
        Assert.Equal(nameof(InMemoryIdempotencyStore), request.GetTagItem(IdempotencyDiagnostics.StoreTag));
        Assert.Equal(ActivityStatusCode.Unset, request.Status);
        var calls = _traces.ChildrenOf(request);
        Assert.Equal(["oncely.store.reserve", "oncely.store.complete"], calls.Select(c => c.OperationName));
        Assert.Equal("acquired", calls[0].GetTagItem(IdempotencyDiagnostics.ReservationTag));
        Assert.All(calls, c => Assert.Equal(_operation, c.GetTagItem(IdempotencyDiagnostics.OperationTag)));
    }

    [Fact]
    public async Task ExecuteAsync_Redelivery_RequestSpanReplayedWithOneReserveSpan()
    {
        await _executor.ExecuteAsync(Message("message-1"), "fp", Ok);
        await _executor.ExecuteAsync(Message("message-1"), "fp", Ok);

        var redelivery = _traces.RequestsOf(_operation)[1];
        Assert.Equal("replayed", redelivery.GetTagItem(IdempotencyDiagnostics.OutcomeTag));
        var call = Assert.Single(_traces.ChildrenOf(redelivery));
        Assert.Equal("completed", call.GetTagItem(IdempotencyDiagnostics.ReservationTag));
    }

    [Fact]
    public async Task ExecuteAsync_OperationThrows_RequestSpanReleasedWithErrorTypeAndNoMessage()
    {
        await Assert.ThrowsAsync<InvalidOperationException>(async () =>
            await _executor.ExecuteAsync(Message("message-9"), "fp", (_, _) => throw new InvalidOperationException("card 4242 4242 4242 4242 declined for message-9")));

        var request = Assert.Single(_traces.RequestsOf(_operation));
        Assert.Equal("released", request.GetTagItem(IdempotencyDiagnostics.OutcomeTag));
        Assert.Equal(typeof(InvalidOperationException).FullName, request.GetTagItem(IdempotencyDiagnostics.ErrorTypeTag));
        Assert.Equal(ActivityStatusCode.Error, request.Status);
        Assert.Null(request.StatusDescription);
        Assert.Empty(request.Events);
        Assert.Equal(["oncely.store.reserve", "oncely.store.release"], _traces.ChildrenOf(request).Select(c => c.OperationName));
    }

    [Fact]
    public async Task ExecuteAsync_AnyOutcome_NoSpanCarriesTheKeyOrTenant()
    {
        await _executor.ExecuteAsync(Message("key-that-is-a-secret"), "fp", Ok);
        await _executor.ExecuteAsync(Message("key-that-is-a-secret"), "fp", Ok);
        await _executor.ExecuteAsync(Message("key-that-is-a-secret"), "other-payload", Ok);

        var spans = _traces.TracesOf(_operation);
        Assert.NotEmpty(spans);
        foreach (var span in spans)
        {
            Assert.DoesNotContain("key-that-is-a-secret", span.DisplayName, StringComparison.Ordinal);
            foreach (var (name, value) in span.TagObjects)
            {
                var text = Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? string.Empty;
                Assert.False(text.Contains("key-that-is-a-secret", StringComparison.Ordinal) || text.Contains("tenant-secret-7", StringComparison.Ordinal), $"{span.OperationName} tag {name} = {text}");
            }
        }
    }

    [Fact]
    public async Task ExecuteAsync_SameKeyAgain_SameKeyHashOtherKeyAnother()
    {
        await _executor.ExecuteAsync(Message("message-1"), "fp", Ok);
        await _executor.ExecuteAsync(Message("message-1"), "fp", Ok);
        await _executor.ExecuteAsync(Message("message-2"), "fp", Ok);

        var hashes = _traces.RequestsOf(_operation).Select(r => (string)r.GetTagItem(IdempotencyDiagnostics.KeyHashTag)!).ToArray();
        Assert.All(hashes, h => Assert.Matches("^[0-9a-f]{16}$", h));
        Assert.Equal(hashes[0], hashes[1]);
        Assert.NotEqual(hashes[0], hashes[2]);
    }

    [Fact]
    public async Task ExecuteAsync_ThreeOutcomes_CountedAndTimedByOutcomeAndOperation()
    {
        await _executor.ExecuteAsync(Message("message-1"), "fp", Ok);
        await _executor.ExecuteAsync(Message("message-1"), "fp", Ok);
        await _executor.ExecuteAsync(Message("message-1"), "other-payload", Ok);

        var counted = _metrics.Of(IdempotencyDiagnostics.RequestsInstrument);
        Assert.Equal(["executed", "replayed", "key_reused"], counted.Select(m => m.Tag(IdempotencyDiagnostics.OutcomeTag)));
        Assert.All(counted, m => Assert.Equal(_operation, m.Tag(IdempotencyDiagnostics.OperationTag)));
        var timed = _metrics.Of(IdempotencyDiagnostics.RequestDurationInstrument);
        Assert.Equal(["executed", "replayed", "key_reused"], timed.Select(m => m.Tag(IdempotencyDiagnostics.OutcomeTag)));
        Assert.All(timed, m => Assert.Equal("s", m.Instrument.Unit));
        Assert.All(timed, m => Assert.True(m.Value >= 0));
    }

    [Fact]
    public async Task ExecuteAsync_StoreCalls_TimedByStoreAndCallWithoutErrorType()
    {
        await _executor.ExecuteAsync(Message("message-1"), "fp", Ok);

        var calls = _metrics.Of(IdempotencyDiagnostics.StoreOperationDurationInstrument);
        Assert.Equal(["reserve", "complete"], calls.Select(m => m.Tag(IdempotencyDiagnostics.StoreOperationTag)));
        Assert.All(calls, m => Assert.Equal(nameof(InMemoryIdempotencyStore), m.Tag(IdempotencyDiagnostics.StoreTag)));
        Assert.All(calls, m => Assert.False(m.Tags.ContainsKey(IdempotencyDiagnostics.ErrorTypeTag)));
    }

    [Fact]
    public async Task ExecuteAsync_WhileRunning_CountedActiveUntilCompleted()
    {
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var finish = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var execution = _executor.ExecuteAsync(Message("message-1"), "fp", async (e, ct) =>
        {
            running.SetResult();
            await finish.Task;
            return new IdempotentResponse(0, [], "done"u8.ToArray());
        }).AsTask();
        await running.Task;

        var whileRunning = _metrics.Of(IdempotencyDiagnostics.ActiveExecutionsInstrument).Sum(m => m.Value);
        finish.SetResult();
        await execution;
        var active = _metrics.Of(IdempotencyDiagnostics.ActiveExecutionsInstrument);

        Assert.Equal(1, whileRunning);
        Assert.Equal([1.0, -1.0], active.Select(m => m.Value));
        Assert.All(active, m => Assert.Equal(_operation, m.Tag(IdempotencyDiagnostics.OperationTag)));
    }
}
