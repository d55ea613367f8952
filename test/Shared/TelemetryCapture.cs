using System.Collections;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using OpenTelemetry;
using OpenTelemetry.Trace;

namespace Oncely.Testing;

/// <summary>
/// Oncely's spans, through the OpenTelemetry SDK and its in-memory exporter, exactly as an application would export them.
/// The source is process-wide and tests run in parallel, so a test reads only the spans of its own operation.
/// </summary>
public sealed class TraceCapture : IDisposable
{
    private readonly LockedList<Activity> _spans = new();
    private readonly TracerProvider _provider;

    public TraceCapture(params string[] extraSources)
    {
        _provider = Sdk.CreateTracerProviderBuilder()
            .AddSource(IdempotencyDiagnostics.ActivitySourceName)
            .AddSource(extraSources)
            .SetSampler(new AlwaysOnSampler())
            .AddInMemoryExporter(_spans)
            .Build()!;
    }

    /// <summary>Every exported span whose trace holds a span tagged with <paramref name="operation"/>.</summary>
    public IReadOnlyList<Activity> TracesOf(string operation)
    {
        _provider.ForceFlush();
        var all = _spans.Snapshot();
        var traces = all.Where(a => Equals(a.GetTagItem(IdempotencyDiagnostics.OperationTag), operation)).Select(a => a.TraceId).ToHashSet();
        return [.. all.Where(a => traces.Contains(a.TraceId))];
    }

    /// <summary>Every exported span of one trace, oldest first.</summary>
    public IReadOnlyList<Activity> InTrace(ActivityTraceId trace)
    {
        _provider.ForceFlush();
        return [.. _spans.Snapshot().Where(a => a.TraceId == trace).OrderBy(a => a.StartTimeUtc)];
    }

    /// <summary>The request spans of <paramref name="operation"/>, oldest first.</summary>
    public IReadOnlyList<Activity> RequestsOf(string operation)
        => [.. TracesOf(operation).Where(a => a.OperationName == IdempotencyDiagnostics.RequestActivityName).OrderBy(a => a.StartTimeUtc)];

    /// <summary>The spans whose parent is <paramref name="parent"/>.</summary>
    public IReadOnlyList<Activity> ChildrenOf(Activity parent)
        => [.. _spans.Snapshot().Where(a => a.ParentSpanId == parent.SpanId && a.TraceId == parent.TraceId).OrderBy(a => a.StartTimeUtc)];

    public void Dispose() => _provider.Dispose();

    private sealed class LockedList<T> : ICollection<T>
    {
        private readonly List<T> _items = [];

        public int Count
        {
            get
            {
                lock (_items)
                {
                    return _items.Count;
                }
            }
        }

        public bool IsReadOnly => false;

        public void Add(T item)
        {
            lock (_items)
            {
                _items.Add(item);
            }
        }

        public T[] Snapshot()
        {
            lock (_items)
            {
                return [.. _items];
            }
        }

        public void Clear()
        {
            lock (_items)
            {
                _items.Clear();
            }
        }

        public bool Contains(T item) => Snapshot().Contains(item);

        public void CopyTo(T[] array, int arrayIndex) => Snapshot().CopyTo(array, arrayIndex);

        public bool Remove(T item)
        {
            lock (_items)
            {
                return _items.Remove(item);
            }
        }

        public IEnumerator<T> GetEnumerator() => ((IEnumerable<T>)Snapshot()).GetEnumerator();

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }
}

/// <summary>
/// Every measurement of the <c>Oncely</c> meter created by one <see cref="IMeterFactory"/> (one application, or one
/// executor), so tests running in parallel never see each other's measurements.
/// </summary>
public sealed class MetricCapture : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentQueue<Measurement> _measurements = new();

    public MetricCapture(IMeterFactory factory)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == IdempotencyDiagnostics.MeterName && ReferenceEquals(instrument.Meter.Scope, factory))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.Start();
    }

    public IReadOnlyList<Measurement> Of(string instrument) => [.. _measurements.Where(m => m.Instrument.Name == instrument)];

    public void Dispose() => _listener.Dispose();

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        => _measurements.Enqueue(new Measurement(instrument, value, tags.ToArray().ToDictionary(t => t.Key, t => t.Value)));

    public sealed record Measurement(Instrument Instrument, double Value, IReadOnlyDictionary<string, object?> Tags)
    {
        public object? Tag(string name) => Tags.TryGetValue(name, out var value) ? value : null;
    }
}

/// <summary>A meter factory of its own, so a test's executor records on meters no other test listens to.</summary>
public sealed class TestMeterFactory : IMeterFactory
{
    private readonly ConcurrentBag<Meter> _meters = [];

    public Meter Create(MeterOptions options)
    {
        var meter = new Meter(options.Name, options.Version, options.Tags, scope: this);
        _meters.Add(meter);
        return meter;
    }

    public void Dispose()
    {
        foreach (var meter in _meters)
        {
            meter.Dispose();
        }
    }
}
