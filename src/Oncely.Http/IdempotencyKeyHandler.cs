using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Oncely.Http;

/// <summary>
/// Attaches one idempotency key per logical POST or PATCH and keeps it for every send of that request message; re-sends
/// the request after a <c>409</c> "request in progress" answer once <c>Retry-After</c> has passed.
/// </summary>
/// <remarks>
/// Place it outside (before) any retry or hedging handler so it runs once per logical request and every retry below it
/// re-sends the same message with the header already set. Placed inside, it still keeps the key because the key is
/// stored in <see cref="HttpRequestMessage.Options"/> and an existing key is always reused.
/// </remarks>
internal sealed class IdempotencyKeyHandler : DelegatingHandler
{
    internal const string InProgressProblemSuffix = "idempotency-request-in-progress";
    internal const string KeyReusedProblemSuffix = "idempotency-key-reused";
    internal const int MaxKeyLength = 255;
    internal const int MaxProblemBodyBytes = 64 * 1024;
    internal static readonly TimeSpan DefaultInProgressDelay = TimeSpan.FromSeconds(1);

    private static readonly string[] WellKnownHeaderNames = ["Idempotency-Key", "X-Idempotency-Key"];

    private readonly string _headerName;
    private readonly HashSet<HttpMethod> _methods;
    private readonly Func<HttpRequestMessage, string> _keyFactory;
    private readonly int _maxInProgressRetries;
    private readonly TimeSpan _maxRetryAfter;
    private readonly bool _retryConflictsWithRetryAfter;
    private readonly bool _useQuotedForm;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private int _warnedAboutOrdering;

    public IdempotencyKeyHandler(IdempotencyKeyHandlerOptions options, TimeProvider timeProvider, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(logger);
        _headerName = options.HeaderName;
        _methods = [.. options.Methods];
        _keyFactory = options.KeyFactory;
        _maxInProgressRetries = options.MaxInProgressRetries;
        _maxRetryAfter = options.MaxRetryAfter;
        _retryConflictsWithRetryAfter = options.RetryConflictsWithRetryAfter;
        _useQuotedForm = options.UseQuotedForm;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!_methods.Contains(request.Method))
        {
            return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }

        var key = AttachKey(request);

        // A 409 re-send must send the body again; a one-shot stream can only do that from a buffer. Buffering here also
        // lets resilience handlers below this one re-send streamed bodies.
        if (_maxInProgressRetries > 0 && request.Content is not null)
        {
            await request.Content.LoadIntoBufferAsync(cancellationToken).ConfigureAwait(false);
        }

        for (var resend = 0; ; resend++)
        {
            var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
            response.RequestMessage ??= request;

            if (response.StatusCode is not HttpStatusCode.Conflict and not HttpStatusCode.UnprocessableEntity)
            {
                return response;
            }

            var problemType = await ReadProblemTypeAsync(response.Content, cancellationToken).ConfigureAwait(false);
            if (IsKeyReused(problemType))
            {
                Log.KeyReused(_logger, PrimaryAccountNumbers.Mask(key), (int)response.StatusCode);
                return response;
            }

            if (response.StatusCode != HttpStatusCode.Conflict)
            {
                return response;
            }

            var delay = GetConflictDelay(response.Headers.RetryAfter, problemType, _retryConflictsWithRetryAfter, _maxRetryAfter, _timeProvider.GetUtcNow());
            if (delay is null)
            {
                return response;
            }

            if (resend >= _maxInProgressRetries)
            {
                if (_maxInProgressRetries > 0)
                {
                    Log.ConflictRetriesExhausted(_logger, PrimaryAccountNumbers.Mask(key), _maxInProgressRetries);
                }

                return response;
            }

            Log.ConflictRetry(_logger, PrimaryAccountNumbers.Mask(key), problemType, delay.Value, resend + 1, _maxInProgressRetries);
            response.Dispose();
            await Task.Delay(delay.Value, _timeProvider, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// How long to wait before re-sending after a <c>409</c>, or <see langword="null"/> when it must not be re-sent.
    /// </summary>
    internal static TimeSpan? GetConflictDelay(RetryConditionHeaderValue? retryAfter, string? problemType, bool retryConflictsWithRetryAfter, TimeSpan maxRetryAfter, DateTimeOffset now)
    {
        if (IsKeyReused(problemType))
        {
            return null;
        }

        TimeSpan? requested = retryAfter switch
        {
            { Delta: { } delta } => delta,
            { Date: { } date } => date - now,
            _ => null,
        };

        var inProgress = problemType is not null && problemType.EndsWith(InProgressProblemSuffix, StringComparison.Ordinal);
        if (!inProgress && !(retryConflictsWithRetryAfter && requested is not null))
        {
            return null;
        }

        var delay = requested ?? DefaultInProgressDelay;
        if (delay < TimeSpan.Zero)
        {
            delay = TimeSpan.Zero;
        }

        return delay > maxRetryAfter ? maxRetryAfter : delay;
    }

    internal static bool IsKeyReused(string? problemType) =>
        problemType is not null && problemType.EndsWith(KeyReusedProblemSuffix, StringComparison.Ordinal);

    /// <summary>Formats a key as a structured-field string: <c>"</c>, the key with <c>\</c> and <c>"</c> escaped, <c>"</c>.</summary>
    internal static string Quote(string key)
    {
        var builder = new StringBuilder(key.Length + 2);
        builder.Append('"');
        foreach (var c in key)
        {
            if (c is '"' or '\\')
            {
                builder.Append('\\');
            }

            builder.Append(c);
        }

        return builder.Append('"').ToString();
    }

    /// <summary>Reads a header value as a key: the bare form as is (trimmed), the quoted form unescaped.</summary>
    internal static string Unquote(string value)
    {
        var trimmed = value.Trim();
        if (trimmed.Length < 2 || trimmed[0] != '"' || trimmed[^1] != '"')
        {
            return trimmed;
        }

        var builder = new StringBuilder(trimmed.Length - 2);
        for (var i = 1; i < trimmed.Length - 1; i++)
        {
            if (trimmed[i] == '\\' && i + 1 < trimmed.Length - 1)
            {
                i++;
            }

            builder.Append(trimmed[i]);
        }

        return builder.ToString();
    }

    internal static bool IsValidKey(string? key)
    {
        if (string.IsNullOrEmpty(key) || key.Length > MaxKeyLength)
        {
            return false;
        }

        foreach (var c in key)
        {
            if (c is < '\x21' or > '\x7E')
            {
                return false;
            }
        }

        return true;
    }

    private string AttachKey(HttpRequestMessage request)
    {
        var headerKey = FindHeaderKey(request);
        if (headerKey is not null)
        {
            // The caller set the header (or an earlier pass of this handler did): it is what the server sees, so it wins.
            request.Options.Set(IdempotencyKeyHttpMessageExtensions.RequestOptionsKey, headerKey);
            Log.KeyKept(_logger, PrimaryAccountNumbers.Mask(headerKey), request.Method, PrimaryAccountNumbers.MaskNullable(request.RequestUri?.ToString()));
            return headerKey;
        }

        string key;
        if (request.Options.TryGetValue(IdempotencyKeyHttpMessageExtensions.RequestOptionsKey, out var stored) && !string.IsNullOrEmpty(stored))
        {
            // A key chosen for this message before (by this handler or the caller) and since lost from the headers.
            key = stored;
            EnsureValid(key, "request.Options");
            Log.KeyKept(_logger, PrimaryAccountNumbers.Mask(key), request.Method, PrimaryAccountNumbers.MaskNullable(request.RequestUri?.ToString()));
        }
        else
        {
            WarnIfInsideResiliencePipeline(request);
            key = NewKey(request);
            request.Options.Set(IdempotencyKeyHttpMessageExtensions.RequestOptionsKey, key);
        }

        request.Headers.TryAddWithoutValidation(_headerName, _useQuotedForm ? Quote(key) : key);
        return key;
    }

    private string NewKey(HttpRequestMessage request)
    {
        var key = _keyFactory(request);
        EnsureValid(key, nameof(IdempotencyKeyHandlerOptions.KeyFactory));
        Log.KeyGenerated(_logger, PrimaryAccountNumbers.Mask(key!), request.Method, PrimaryAccountNumbers.MaskNullable(request.RequestUri?.ToString()));
        return key!;
    }

    /// <summary>
    /// Warns (once per handler instance) when a Polly resilience pipeline runs outside this handler: its retries still
    /// reuse the key, but hedging sends clones made before this handler ran, and each clone would get a new key.
    /// </summary>
    private void WarnIfInsideResiliencePipeline(HttpRequestMessage request)
    {
        if (Volatile.Read(ref _warnedAboutOrdering) != 0)
        {
            return;
        }

        foreach (var entry in request.Options)
        {
            if (entry.Value?.GetType().FullName == "Polly.ResilienceContext")
            {
                if (Interlocked.Exchange(ref _warnedAboutOrdering, 1) == 0)
                {
                    Log.InsideResiliencePipeline(_logger);
                }

                return;
            }
        }
    }

    private string? FindHeaderKey(HttpRequestMessage request)
    {
        var found = FirstValue(request, _headerName);
        foreach (var name in WellKnownHeaderNames)
        {
            found ??= FirstValue(request, name);
        }

        return found;

        static string? FirstValue(HttpRequestMessage request, string name)
        {
            if (request.Headers.NonValidated.TryGetValues(name, out var values))
            {
                foreach (var value in values)
                {
                    return Unquote(value);
                }
            }

            return null;
        }
    }

    private static void EnsureValid(string? key, string source)
    {
        if (!IsValidKey(key))
        {
            throw new InvalidOperationException(
                $"The idempotency key from {source} is not valid: a key must be 1 to {MaxKeyLength} visible ASCII characters (no spaces). Got '{PrimaryAccountNumbers.MaskNullable(key)}'.");
        }
    }

    private static async Task<string?> ReadProblemTypeAsync(HttpContent content, CancellationToken cancellationToken)
    {
        var mediaType = content.Headers.ContentType?.MediaType;
        if (mediaType is null
            || !(mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
                 || mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase)))
        {
            return null;
        }

        if (content.Headers.ContentLength is > MaxProblemBodyBytes)
        {
            return null;
        }

        byte[] body;
        try
        {
            // Buffered, so the caller can still read the body of the answer that is finally returned.
            await content.LoadIntoBufferAsync(MaxProblemBodyBytes, cancellationToken).ConfigureAwait(false);
            body = await content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException)
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(body);
            return document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("type", out var type)
                && type.ValueKind == JsonValueKind.String
                ? type.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
