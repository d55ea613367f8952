using System.Collections.Concurrent;

namespace Payments;

/// <summary>
/// Demo only (registered by <c>-- demo</c>, never by the server): fails the first attempt of a request that carries
/// <c>X-Demo-Fault: fail-first-attempt</c>, after its ledger writes but before its transaction commits, so nothing of
/// that attempt is kept and the client sees a 500.
/// </summary>
public sealed class DemoFaults
{
    public const string HeaderName = "X-Demo-Fault";
    public const string FailFirstAttempt = "fail-first-attempt";

    private readonly ConcurrentDictionary<string, bool> _failed = new(StringComparer.Ordinal);

    public int Injected => _failed.Count;

    public void BeforeCommit(HttpContext context)
    {
        if (context.Request.Headers[HeaderName] != FailFirstAttempt)
        {
            return;
        }

        // The client keeps its Idempotency-Key across retries, so the key tells the first attempt from the next ones.
        var key = context.Request.Headers["Idempotency-Key"].ToString();
        if (_failed.TryAdd(key, true))
        {
            throw new InvalidOperationException($"Demo fault: the first attempt of request '{key}' fails before its transaction commits.");
        }
    }
}
