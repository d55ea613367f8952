using System.Diagnostics;
using System.Net.Http.Headers;

namespace Oncely.Check;

/// <summary>The run could not go on: the server cannot be reached, or the request cap was hit.</summary>
internal sealed class CheckAbortedException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Sends the run's requests: only to the URLs the settings name, never following redirects, never keeping cookies,
/// each within the per-request timeout, and never more than <see cref="CheckSettings.MaxRequests"/> in a run.
/// </summary>
internal sealed class Probe : IDisposable
{
    private static readonly HashSet<string> ContentHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Content-Type", "Content-Encoding", "Content-Language", "Content-MD5", "Content-Disposition", "Content-Range", "Content-Location", "Expires", "Last-Modified", "Allow",
    };

    private readonly CheckSettings _settings;
    private readonly HttpClient _client;
    private readonly List<Exchange> _exchanges = [];
    private int _sent;

    public Probe(CheckSettings settings)
    {
        _settings = settings;
        _client = new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            UseCookies = false,
            ConnectTimeout = settings.Timeout,
            PooledConnectionLifetime = TimeSpan.FromMinutes(1),
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
    }

    public int Sent => Volatile.Read(ref _sent);

    /// <summary>Every exchange of the run so far, in the order answers arrived.</summary>
    public IReadOnlyList<Exchange> Exchanges
    {
        get
        {
            lock (_exchanges)
            {
                return [.. _exchanges];
            }
        }
    }

    public async Task<Exchange> SendAsync(ProbeRequest request, CancellationToken cancellationToken)
    {
        if (request.Url != _settings.Url && request.Url != _settings.EffectsUrl)
        {
            throw new InvalidOperationException($"Refusing to send to {request.Url}: only <url> and --effects-url are contacted.");
        }

        if (Interlocked.Increment(ref _sent) > _settings.MaxRequests)
        {
            throw new CheckAbortedException(Text.Invariant($"The run would send more than --max-requests {_settings.MaxRequests} requests; raise it or lower --concurrency."));
        }

        using var message = new HttpRequestMessage(request.Method, request.Url);
        if (request.Body is not null)
        {
            message.Content = new ByteArrayContent(request.Body);
        }

        foreach (var group in request.Headers.GroupBy(header => header.Name, StringComparer.OrdinalIgnoreCase))
        {
            var values = group.Select(header => header.Value).ToArray();
            if (ContentHeaders.Contains(group.Key))
            {
                message.Content ??= new ByteArrayContent([]);
                message.Content.Headers.Remove(group.Key);
                message.Content.Headers.TryAddWithoutValidation(group.Key, values);
            }
            else
            {
                message.Headers.TryAddWithoutValidation(group.Key, values);
            }
        }

        if (message.Content is not null && message.Content.Headers.ContentType is null && request.Body is not null)
        {
            message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        var clock = Stopwatch.StartNew();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_settings.Timeout);
        Exchange exchange;
        try
        {
            using var response = await _client.SendAsync(message, HttpCompletionOption.ResponseContentRead, timeout.Token).ConfigureAwait(false);
            var body = await response.Content.ReadAsByteArrayAsync(timeout.Token).ConfigureAwait(false);
            var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var header in response.Headers.Concat(response.Content.Headers))
            {
                headers[header.Key] = string.Join(", ", header.Value);
            }

            exchange = new Exchange { Request = request, Status = (int)response.StatusCode, Headers = headers, Body = body, Elapsed = clock.Elapsed };
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            exchange = new Exchange { Request = request, Error = Text.Invariant($"no answer within {_settings.Timeout.TotalSeconds:0.#} s"), Elapsed = clock.Elapsed };
        }
        catch (HttpRequestException e) when (e.HttpRequestError is HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError or HttpRequestError.SecureConnectionError)
        {
            throw new CheckAbortedException($"Cannot reach {request.Url.GetLeftPart(UriPartial.Authority)}: {e.Message}", e);
        }
        catch (HttpRequestException e)
        {
            exchange = new Exchange { Request = request, Error = "the connection ended without an answer: " + e.Message, Elapsed = clock.Elapsed };
        }

        lock (_exchanges)
        {
            _exchanges.Add(exchange);
        }

        return exchange;
    }

    public void Dispose() => _client.Dispose();
}
