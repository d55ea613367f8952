using System.Collections.Concurrent;
using Polly.Timeout;

namespace Payments.Demo;

/// <summary>
/// Demo only: sits below the resilience pipeline (so it sees every attempt) and, for requests marked with
/// <see cref="Enabled"/>, lets the first attempt reach the server, then throws its answer away and reports a timeout.
/// The server has committed; the client does not know and retries.
/// </summary>
internal sealed class LoseFirstResponseHandler(ResponseLoss loss) : DelegatingHandler
{
    public static readonly HttpRequestOptionsKey<bool> Enabled = new("payments-demo.lose-first-response");

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var response = await base.SendAsync(request, cancellationToken);
        if (request.Options.TryGetValue(Enabled, out var enabled) && enabled && loss.IsFirstAttempt(request))
        {
            response.Dispose();
            throw new TimeoutRejectedException("Demo: the answer was lost on its way back to the client (as if the attempt had timed out).");
        }

        return response;
    }
}

/// <summary>Remembers which logical requests already lost an answer (keyed by their Idempotency-Key, which retries keep).</summary>
internal sealed class ResponseLoss
{
    private readonly ConcurrentDictionary<string, bool> _seen = new(StringComparer.Ordinal);

    public int Lost => _seen.Count;

    public bool IsFirstAttempt(HttpRequestMessage request)
        => request.Headers.TryGetValues("Idempotency-Key", out var keys) && _seen.TryAdd(string.Join(',', keys), true);
}
