using System.Collections.Concurrent;
using System.Diagnostics.Tracing;
using System.Globalization;
using System.Text;

namespace Oncely.LoadTest;

/// <summary>
/// <c>--alloc-types</c>: which types the server allocates, by the runtime's own allocation sampling (one
/// <c>GCAllocationTick</c> event per about 100 KB allocated, naming the type that crossed the threshold). Over a cell of
/// tens of thousands of requests the sampled bytes per type converge to its share of the allocations; printed after each
/// cell as bytes per request (sampled bytes over the requests wrk sent in the cell, warm-up included).
/// </summary>
internal sealed class AllocationSampler : EventListener
{
    private const EventKeywords GcKeyword = (EventKeywords)0x1;
    private readonly ConcurrentDictionary<string, long> _bytes = new(StringComparer.Ordinal);

    protected override void OnEventSourceCreated(EventSource eventSource)
    {
        if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
        {
            EnableEvents(eventSource, EventLevel.Verbose, GcKeyword);
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs eventData)
    {
        if (eventData.EventName is not { } name || !name.StartsWith("GCAllocationTick", StringComparison.Ordinal) || eventData.Payload is null)
        {
            return;
        }

        var typeIndex = eventData.PayloadNames!.IndexOf("TypeName");
        var amountIndex = eventData.PayloadNames.IndexOf("AllocationAmount64");
        if (typeIndex < 0 || amountIndex < 0)
        {
            return;
        }

        var type = eventData.Payload[typeIndex] as string ?? "?";
        var amount = Convert.ToInt64(eventData.Payload[amountIndex], CultureInfo.InvariantCulture);
        _bytes.AddOrUpdate(type, amount, (_, total) => total + amount);
    }

    /// <summary>The top <paramref name="count"/> types since the last call, per request, and starts counting afresh.</summary>
    public string TakeReport(long requests, int count = 45)
    {
        var snapshot = _bytes.ToArray();
        _bytes.Clear();
        var total = snapshot.Sum(pair => pair.Value);
        var text = new StringBuilder();
        text.AppendLine(string.Create(CultureInfo.InvariantCulture, $"    sampled allocations: {total / (double)Math.Max(1, requests):N0} B/request over {requests:N0} requests"));
        foreach (var (type, bytes) in snapshot.OrderByDescending(pair => pair.Value).Take(count))
        {
            text.AppendLine(string.Create(CultureInfo.InvariantCulture, $"    {bytes / (double)Math.Max(1, requests),8:N1} B  {100.0 * bytes / Math.Max(1, total),5:N1} %  {type}"));
        }

        return text.ToString();
    }
}
