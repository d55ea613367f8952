using System.Buffers;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace Oncely.AspNetCore;

/// <summary>
/// Applies the decision table to endpoints that carry <see cref="IIdempotencyMetadata"/>: validate the key, fingerprint
/// the request, reserve, then run once and store, or replay, or refuse.
/// </summary>
internal sealed partial class IdempotencyMiddleware
{
    private static readonly string[] NoValues = [];

    private readonly RequestDelegate _next;
    private readonly IdempotencyExecutor _executor;
    private readonly IdempotencyOptions _options;
    private readonly IdempotencyProblemWriter _problems;
    private readonly IdempotencyMetrics _metrics;
    private readonly TimeProvider _clock;
    private readonly ILogger _logger;

    public IdempotencyMiddleware(
        RequestDelegate next,
        IdempotencyExecutor executor,
        IOptions<IdempotencyOptions> options,
        IdempotencyProblemWriter problems,
        IdempotencyMetrics metrics,
        TimeProvider clock,
        ILogger<IdempotencyMiddleware> logger)
    {
        _next = next;
        _executor = executor;
        _options = options.Value;
        _problems = problems;
        _metrics = metrics;
        _clock = clock;
        _logger = logger;
    }

    public Task InvokeAsync(HttpContext context)
    {
        var endpoint = context.GetEndpoint();
        var metadata = endpoint?.Metadata.GetMetadata<IIdempotencyMetadata>();
        return metadata is null ? _next(context) : InvokeIdempotentAsync(context, endpoint!, metadata);
    }

    private async Task InvokeIdempotentAsync(HttpContext context, Endpoint endpoint, IIdempotencyMetadata metadata)
    {
        var request = context.Request;
        var keyError = IdempotencyKeyParser.TryParse(
            request.Headers[IdempotencyOptions.HeaderName],
            _options.AcceptAliasHeader ? request.Headers[IdempotencyOptions.AliasHeaderName] : NoValues,
            _options.MaxKeyLength,
            out var key);
        if (keyError != IdempotencyKeyError.None)
        {
            await RejectAsync(context, StatusCodes.Status400BadRequest, IdempotencyProblemTypes.KeyInvalid, "Invalid Idempotency-Key", DescribeKeyError(keyError), key: null).ConfigureAwait(false);
            return;
        }

        if (key is null)
        {
            if (!metadata.KeyRequired)
            {
                _metrics.Count(IdempotencyMetrics.Outcomes.NoKey);
                await _next(context).ConfigureAwait(false);
                return;
            }

            await RejectAsync(
                context,
                StatusCodes.Status400BadRequest,
                IdempotencyProblemTypes.KeyMissing,
                "Idempotency-Key required",
                $"{request.Method} {request.Path} performs an effectful operation: send an Idempotency-Key header (for example a UUID) and reuse the same key on every retry of this operation.",
                key: null).ConfigureAwait(false);
            return;
        }

        var tenant = _options.TenantResolver(context);
        if (string.IsNullOrEmpty(tenant))
        {
            LogTenantUnresolved(_logger, request.Method, request.Path);
            await RejectAsync(
                context,
                StatusCodes.Status500InternalServerError,
                IdempotencyProblemTypes.TenantUnresolved,
                "Caller could not be identified",
                "The server could not tell which tenant this authenticated request belongs to, so it refused to run it. This is a server configuration problem (IdempotencyOptions.TenantResolver).",
                key).ConfigureAwait(false);
            return;
        }

        if (request.ContentLength > _options.MaxRequestBodySize)
        {
            await RejectTooLargeAsync(context, key).ConfigureAwait(false);
            return;
        }

        byte[]? rented = null;
        try
        {
            var (buffer, length, tooLarge) = await ReadBodyAsync(request, _options.MaxRequestBodySize, context.RequestAborted).ConfigureAwait(false);
            rented = buffer;
            if (tooLarge)
            {
                await RejectTooLargeAsync(context, key).ConfigureAwait(false);
                return;
            }

            var body = rented is null ? ReadOnlyMemory<byte>.Empty : rented.AsMemory(0, length);
            if (rented is not null)
            {
                // The handler reads the same bytes that were fingerprinted.
                request.Body = new MemoryStream(rented, 0, length, writable: false);
            }

            var id = new IdempotencyRecordId(tenant, OperationOf(request.Method, endpoint), key);
            var fingerprint = RequestFingerprint.Compute(new FingerprintInput(request.Method, request.PathBase.Add(request.Path).Value ?? "/")
            {
                Query = QueryPairs(request.Query),
                Headers = FingerprintHeaderPairs(request.Headers),
                ContentType = request.ContentType,
                Body = body,
            });

            // Store transitions are not tied to the client's connection: an abandoned reservation would otherwise
            // block retries for a whole lease. Each call is bounded by StoreTimeout instead.
            var decision = await _executor.BeginAsync(id, fingerprint, CancellationToken.None).ConfigureAwait(false);
            switch (decision.Kind)
            {
                case IdempotencyDecisionKind.Execute:
                    await ExecuteAsync(context, decision.Execution!).ConfigureAwait(false);
                    break;
                case IdempotencyDecisionKind.Replay:
                    await ReplayAsync(context, decision.Record!).ConfigureAwait(false);
                    break;
                case IdempotencyDecisionKind.InProgress:
                    _metrics.Count(IdempotencyMetrics.Outcomes.InProgress);
                    await _problems.WriteAsync(
                        context,
                        _options,
                        StatusCodes.Status409Conflict,
                        IdempotencyProblemTypes.RequestInProgress,
                        "Request in progress",
                        "A request with this Idempotency-Key is still being processed. Retry after the Retry-After delay with the same key and payload to receive its result.",
                        key,
                        _options.InProgressRetryAfter).ConfigureAwait(false);
                    break;
                case IdempotencyDecisionKind.KeyReused:
                    await KeyReusedAsync(context, decision.Record!, fingerprint, body).ConfigureAwait(false);
                    break;
                default:
                    _metrics.Count(IdempotencyMetrics.Outcomes.StoreUnavailable);
                    await _problems.WriteAsync(
                        context,
                        _options,
                        StatusCodes.Status503ServiceUnavailable,
                        IdempotencyProblemTypes.StoreUnavailable,
                        "Idempotency store unavailable",
                        "The request was not processed because the server cannot currently guarantee it runs only once. Nothing was executed: retry later with the same Idempotency-Key.",
                        key,
                        _options.StoreUnavailableRetryAfter).ConfigureAwait(false);
                    break;
            }
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private async Task ExecuteAsync(HttpContext context, IdempotencyExecution execution)
    {
        var originalBody = context.Features.GetRequiredFeature<IHttpResponseBodyFeature>();
        using var capture = new ResponseCaptureStream(originalBody.Stream, _options.MaxResponseBodySize);
        var captureFeature = new StreamResponseBodyFeature(capture, originalBody);
        context.Features.Set<IHttpResponseBodyFeature>(captureFeature);
        context.Features.Set<IIdempotencyFeature>(new IdempotencyFeature(execution));
        try
        {
            try
            {
                await _next(context).ConfigureAwait(false);
                await captureFeature.CompleteAsync().ConfigureAwait(false);
            }
            catch
            {
                // Row 11: the handler threw; a retry must be able to run it again (or resume at its recovery point).
                await execution.ReleaseAsync(CancellationToken.None).ConfigureAwait(false);
                _metrics.Count(IdempotencyMetrics.Outcomes.Released);
                throw;
            }

            var status = context.Response.StatusCode;
            if (execution.CompletedInTransaction && !execution.IsFinished && !ShouldStore(status))
            {
                // The handler wrote the completion in its transaction but answered with a status that is never stored
                // (typically: the transaction rolled back and it answered 500). If the completion did not commit, the
                // record is still InProgress with this token and is released so a retry executes; if it did commit,
                // the release is refused by the store (state is Completed) and changes nothing.
                await execution.ReleaseAsync(CancellationToken.None).ConfigureAwait(false);
                _metrics.Count(IdempotencyMetrics.Outcomes.Released);
                return;
            }

            if (execution.CompletedInTransaction || execution.IsFinished)
            {
                // The handler's own transaction committed the completion.
                _metrics.Count(IdempotencyMetrics.Outcomes.Executed);
                return;
            }

            if (!ShouldStore(status))
            {
                await execution.ReleaseAsync(CancellationToken.None).ConfigureAwait(false);
                _metrics.Count(IdempotencyMetrics.Outcomes.Released);
                return;
            }

            if (capture.Overflowed)
            {
                LogResponseTooLarge(_logger, execution.Id.Tenant, execution.Id.Operation, execution.Id.Key, capture.BytesWritten, _options.MaxResponseBodySize);
            }

            var response = new IdempotentResponse(status, SnapshotHeaders(context.Response.Headers), capture.Captured, bodyOmitted: capture.Overflowed);
            await execution.CompleteAsync(response, CancellationToken.None).ConfigureAwait(false);
            _metrics.Count(IdempotencyMetrics.Outcomes.Executed);
        }
        finally
        {
            context.Features.Set(originalBody);
            context.Features.Set<IIdempotencyFeature>(null);
            await execution.DisposeAsync().ConfigureAwait(false); // stops the lease renewal (row 21)
        }
    }

    private async Task ReplayAsync(HttpContext context, IdempotencyRecord record)
    {
        var stored = record.Response!;
        var response = context.Response;
        response.StatusCode = stored.StatusCode;
        foreach (var (name, value) in stored.Headers)
        {
            if (stored.BodyOmitted && string.Equals(name, "Content-Type", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            response.Headers.Append(name, value);
        }

        response.Headers[IdempotencyOptions.ReplayedHeaderName] = "true";
        if (stored.BodyOmitted)
        {
            response.Headers[IdempotencyOptions.BodyOmittedHeaderName] = "true";
        }

        _metrics.Count(IdempotencyMetrics.Outcomes.Replayed);
        LogReplayed(_logger, record.Id.Tenant, record.Id.Operation, record.Id.Key, stored.StatusCode);
        response.ContentLength = stored.Body.Length;
        if (!stored.Body.IsEmpty && !HttpMethods.IsHead(context.Request.Method))
        {
            await response.Body.WriteAsync(stored.Body, context.RequestAborted).ConfigureAwait(false);
        }
    }

    private async Task KeyReusedAsync(HttpContext context, IdempotencyRecord record, string attemptedFingerprint, ReadOnlyMemory<byte> body)
    {
        _metrics.Count(IdempotencyMetrics.Outcomes.KeyReused);
        var payload = _options.PayloadRedactor(context.Request.ContentType, body);
        if (payload.Length > _options.AuditPayloadLimit)
        {
            payload = string.Concat(payload.AsSpan(0, _options.AuditPayloadLimit), "…[truncated]");
        }

        var id = record.Id;
        LogKeyReused(_logger, id.Tenant, id.Operation, id.Key, record.Fingerprint, attemptedFingerprint, payload);
        if (_executor.Store is IIdempotencyAuditStore audit)
        {
            try
            {
                using var timeout = new CancellationTokenSource(_options.StoreTimeout, _clock);
                await audit.AppendAsync(new KeyReuseAuditEntry(id, record.Fingerprint, attemptedFingerprint, payload, _clock.GetUtcNow()), timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                // The refusal does not depend on the audit row; losing it is logged, the answer stays the same.
                LogAuditFailed(_logger, ex, id.Tenant, id.Operation, id.Key);
            }
        }

        await _problems.WriteAsync(
            context,
            _options,
            _options.KeyReusedStatusCode,
            IdempotencyProblemTypes.KeyReused,
            "Idempotency-Key reused",
            "This Idempotency-Key was already used for a request with a different payload. Use a new key for a new operation; retries of an operation must send exactly the same request.",
            id.Key).ConfigureAwait(false);
    }

    private Task RejectTooLargeAsync(HttpContext context, string key) => RejectAsync(
        context,
        StatusCodes.Status413PayloadTooLarge,
        IdempotencyProblemTypes.PayloadTooLarge,
        "Request body too large",
        $"Idempotent requests may carry at most {_options.MaxRequestBodySize} bytes of body. Nothing was executed.",
        key);

    private Task RejectAsync(HttpContext context, int status, string type, string title, string detail, string? key)
    {
        _metrics.Count(IdempotencyMetrics.Outcomes.Rejected);
        LogRejected(_logger, context.Request.Method, context.Request.Path, status, type);
        return _problems.WriteAsync(context, _options, status, type, title, detail, key);
    }

    private bool ShouldStore(int status)
    {
        if (status >= 500)
        {
            return _options.StoreServerErrors;
        }

        return status is not (StatusCodes.Status408RequestTimeout or StatusCodes.Status409Conflict or 425 or StatusCodes.Status429TooManyRequests);
    }

    private List<KeyValuePair<string, string>> SnapshotHeaders(IHeaderDictionary headers)
    {
        var kept = new List<KeyValuePair<string, string>>(_options.ReplayedHeaders.Count);
        foreach (var (name, values) in headers)
        {
            if (!_options.ReplayedHeaders.Contains(name) || string.Equals(name, "Set-Cookie", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            foreach (var value in values)
            {
                if (value is not null)
                {
                    kept.Add(new(name, value));
                }
            }
        }

        return kept;
    }

    private IEnumerable<KeyValuePair<string, string?>> FingerprintHeaderPairs(IHeaderDictionary headers)
    {
        if (_options.FingerprintHeaders.Count == 0)
        {
            return [];
        }

        var pairs = new List<KeyValuePair<string, string?>>();
        foreach (var name in _options.FingerprintHeaders)
        {
            foreach (var value in headers[name])
            {
                pairs.Add(new(name, value));
            }
        }

        return pairs;
    }

    private static IEnumerable<KeyValuePair<string, string?>> QueryPairs(IQueryCollection query)
    {
        if (query.Count == 0)
        {
            return [];
        }

        var pairs = new List<KeyValuePair<string, string?>>();
        foreach (var (name, values) in query)
        {
            foreach (var value in values)
            {
                pairs.Add(new(name, value));
            }
        }

        return pairs;
    }

    private static string OperationOf(string method, Endpoint endpoint)
    {
        if (endpoint is RouteEndpoint { RoutePattern.RawText: { } pattern })
        {
            return pattern.StartsWith('/') ? $"{method} {pattern}" : $"{method} /{pattern}";
        }

        return $"{method} {endpoint.DisplayName}";
    }

    private static async Task<(byte[]? Buffer, int Length, bool TooLarge)> ReadBodyAsync(HttpRequest request, int limit, CancellationToken cancellationToken)
    {
        if (request.ContentLength == 0)
        {
            return (null, 0, false);
        }

        var buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(request.ContentLength ?? 4096, (long)limit + 1));
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (length > limit)
                    {
                        break;
                    }

                    var grown = ArrayPool<byte>.Shared.Rent((int)Math.Min((long)buffer.Length * 2, (long)limit + 1));
                    buffer.AsSpan(0, length).CopyTo(grown);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = grown;
                }

                var read = await request.Body.ReadAsync(buffer.AsMemory(length), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                length += read;
                if (length > limit)
                {
                    break;
                }
            }
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }

        if (length > limit)
        {
            return (buffer, length, true);
        }

        if (length == 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            return (null, 0, false);
        }

        return (buffer, length, false);
    }

    private static string DescribeKeyError(IdempotencyKeyError error) => error switch
    {
        IdempotencyKeyError.Empty => "The Idempotency-Key header is empty. Send a non-empty key, for example a UUID.",
        IdempotencyKeyError.TooLong => "The Idempotency-Key is too long. Keys may have at most 255 characters; a UUID is recommended.",
        IdempotencyKeyError.InvalidCharacter => "The Idempotency-Key contains a character outside visible ASCII (spaces, control characters and non-ASCII text are not allowed).",
        IdempotencyKeyError.MultipleValues => "The Idempotency-Key header was sent with several values. Send exactly one key.",
        IdempotencyKeyError.ConflictingHeaders => "Idempotency-Key and X-Idempotency-Key carry different keys. Send one header, or the same key in both.",
        _ => "The Idempotency-Key is not a well-formed structured-field string. Send the key bare (abc) or quoted (\"abc\").",
    };

    [LoggerMessage(IdempotencyEventIds.Replayed, LogLevel.Debug, "Replayed the stored answer ({StatusCode}) of {Operation} for tenant {Tenant} with key {Key}")]
    private static partial void LogReplayed(ILogger logger, string tenant, string operation, string key, int statusCode);

    [LoggerMessage(IdempotencyEventIds.KeyReused, LogLevel.Warning, "AUDIT key reused with a different payload: tenant {Tenant}, operation {Operation}, key {Key}, stored fingerprint {StoredFingerprint}, attempted fingerprint {AttemptedFingerprint}, payload {Payload}")]
    private static partial void LogKeyReused(ILogger logger, string tenant, string operation, string key, string storedFingerprint, string attemptedFingerprint, string payload);

    [LoggerMessage(IdempotencyEventIds.ResponseTooLarge, LogLevel.Warning, "The answer of {Operation} for tenant {Tenant} with key {Key} is {Bytes} bytes, over the {Limit}-byte limit: it is stored without its body, and retries get the status and headers only")]
    private static partial void LogResponseTooLarge(ILogger logger, string tenant, string operation, string key, long bytes, int limit);

    [LoggerMessage(IdempotencyEventIds.RequestRejected, LogLevel.Debug, "Refused {Method} {Path} with {StatusCode} ({ProblemType}) before running it")]
    private static partial void LogRejected(ILogger logger, string method, PathString path, int statusCode, string problemType);

    [LoggerMessage(IdempotencyEventIds.TenantUnresolved, LogLevel.Error, "Refused {Method} {Path}: the caller is authenticated but has no NameIdentifier or sub claim; configure IdempotencyOptions.TenantResolver")]
    private static partial void LogTenantUnresolved(ILogger logger, string method, PathString path);

    [LoggerMessage(IdempotencyEventIds.AuditFailed, LogLevel.Warning, "Writing the key-reuse audit entry for {Operation}, tenant {Tenant}, key {Key} failed")]
    private static partial void LogAuditFailed(ILogger logger, Exception exception, string tenant, string operation, string key);
}
