using System.Runtime.ExceptionServices;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Oncely.AspNetCore;

/// <summary>
/// Applies the decision table to endpoints that carry <see cref="IIdempotencyMetadata"/>: validate the key, identify the
/// caller, read and fingerprint the body, reserve, then run once and store, or replay, or refuse. Each job has its own
/// type: <see cref="IdempotencyEndpointPlan"/> (the operation), <see cref="RequestBodyBuffer"/> (the body),
/// <see cref="ResponseCaptureStream"/> and <see cref="IdempotentResponseWriter"/> (capture and replay),
/// <see cref="KeyReuseAuditor"/> (row 8's audit).
/// </summary>
internal sealed partial class IdempotencyMiddleware
{
    private static readonly string[] NoValues = [];

    private readonly RequestDelegate _next;
    private readonly IdempotencyOptions _options;
    private readonly IdempotencyProblemWriter _problems;
    private readonly IdempotencyMetrics _metrics;
    private readonly IdempotentResponseWriter _responses;
    private readonly Func<object, List<KeyValuePair<string, string>>> _snapshotBodyHeaders;
    private readonly KeyReuseAuditor _auditor;
    private readonly IdempotencyEndpointSettings.Cache _settings;
    private readonly FingerprintCache _fingerprints = new();
    private readonly ILogger _logger;

    public IdempotencyMiddleware(
        RequestDelegate next,
        IdempotencyExecutor executor,
        IOptions<IdempotencyOptions> options,
        IdempotencyProblemWriter problems,
        IdempotencyMetrics metrics,
        KeyReuseAuditor auditor,
        ILogger<IdempotencyMiddleware> logger)
    {
        _next = next;
        _options = options.Value;
        _problems = problems;
        _metrics = metrics;
        _responses = new IdempotentResponseWriter(_options);
        _snapshotBodyHeaders = response => _responses.SnapshotBodyHeaders(((HttpResponse)response).Headers);
        _auditor = auditor;
        _settings = new IdempotencyEndpointSettings.Cache(_options, executor);
        _logger = logger;
    }

    public Task InvokeAsync(HttpContext context)
    {
        // Row 1: endpoints that are not idempotent pass through untouched.
        var endpoint = context.GetEndpoint();
        var plan = endpoint is null ? null : IdempotencyEndpointPlan.For(endpoint);
        if (plan is null)
        {
            return _next(context);
        }

        var settings = plan.Settings ??= _settings.For(endpoint!);
        return _metrics.IsObserving ? InvokeObservedAsync(context, plan, settings) : InvokeIdempotentAsync(context, plan, settings);
    }

    // While something listens: a span around the whole decision (the handler's own spans nest under it), and the
    // request's outcome and duration. The span is started here, in an async method, so it is never left current for
    // the middleware before this one.
    private async Task InvokeObservedAsync(HttpContext context, IdempotencyEndpointPlan plan, IdempotencyEndpointSettings settings)
    {
        var attempt = _metrics.Start(context, plan.OperationFor(context.Request.Method));
        try
        {
            await InvokeIdempotentAsync(context, plan, settings).ConfigureAwait(false);
        }
        catch (Exception ex) when (attempt is not null)
        {
            attempt.SetError(ex);
            throw;
        }
        finally
        {
            if (attempt is not null)
            {
                context.Features.Set<IdempotencyAttempt>(null);
                attempt.Stop();
            }
        }
    }

    private async Task InvokeIdempotentAsync(HttpContext context, IdempotencyEndpointPlan plan, IdempotencyEndpointSettings settings)
    {
        var request = context.Request;

        // A signed request (a webhook delivery) is verified before anything else, and a key kept in the body needs the
        // body: such endpoints read it first. A sender that cannot be verified is refused before the store is touched.
        using var early = plan.ReadsBodyFirst ? await ReadBodyAsync(context, settings, key: null).ConfigureAwait(false) : null;
        if (plan.ReadsBodyFirst && early is null)
        {
            return;
        }

        var sender = plan.SenderVerifier is { } verifier ? await VerifySenderAsync(context, verifier, early!).ConfigureAwait(false) : null;
        if (plan.SenderVerifier is not null && sender is null)
        {
            return;
        }

        // Row 4: a malformed key is refused before anything else.
        var reading = plan.KeySource?.Read(request, early?.Body ?? default, _options.MaxKeyLength) ?? ReadKeyHeader(request);
        var key = reading.Key;
        if (reading.Problem is { } keyProblem)
        {
            await RejectAsync(context, StatusCodes.Status400BadRequest, IdempotencyProblemTypes.KeyInvalid, plan.KeySource is null ? "Invalid Idempotency-Key" : "Invalid idempotency key", keyProblem, key: null).ConfigureAwait(false);
            return;
        }

        if (key is null)
        {
            if (!plan.KeyRequired)
            {
                // Row 3: no key, no record.
                _metrics.Count(context, IdempotencyMetrics.Outcomes.NoKey);
                IdempotencyEndpointGuard.MarkHandled(context);
                early?.AttachToRequest();
                await _next(context).ConfigureAwait(false);
                return;
            }

            // Row 2.
            await RejectAsync(
                context,
                StatusCodes.Status400BadRequest,
                IdempotencyProblemTypes.KeyMissing,
                plan.KeySource is null ? "Idempotency-Key required" : "Idempotency key required",
                plan.KeySource?.MissingDetail(request) ?? $"{request.Method} {request.Path} performs an effectful operation: send an Idempotency-Key header (for example a UUID) and reuse the same key on every retry of this operation.",
                key: null).ConfigureAwait(false);
            return;
        }

        // The scope's first half. Refusals here happen before the operation starts, so nothing is recorded.
        var tenant = sender ?? _options.TenantResolver(context);
        if (string.IsNullOrEmpty(tenant))
        {
            if (context.User.Identity?.IsAuthenticated == true)
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

            if (!plan.AllowAnonymous)
            {
                await RejectAsync(
                    context,
                    StatusCodes.Status401Unauthorized,
                    IdempotencyProblemTypes.CallerUnauthenticated,
                    "Authentication required",
                    "This idempotent operation keeps each caller's answers apart, so it needs an authenticated caller: send valid credentials. Nothing was executed.",
                    key).ConfigureAwait(false);
                return;
            }

            tenant = IdempotencyRecordId.AnonymousTenant;
        }

        using var body = early ?? await ReadBodyAsync(context, settings, key).ConfigureAwait(false);
        if (body is null)
        {
            return;
        }

        var id = new IdempotencyRecordId(tenant, plan.OperationFor(request.Method), key);
        var fingerprint = RequestFingerprint.Compute(
            new FingerprintInput(request.Method, request.PathBase.Add(request.Path).Value ?? "/")
            {
                Query = QueryPairs(request.Query),
                Headers = FingerprintHeaderPairs(request.Headers),
                ContentType = request.ContentType,
                Body = body.Body,
            },
            _fingerprints,
            tenant);

        // Store transitions are not tied to the client's connection: an abandoned reservation would otherwise block
        // retries for a whole lease. Each call is bounded by StoreTimeout instead. A one-commit endpoint only reads
        // here: its handler reserves inside its own transaction. Only the wait for an InProgress record (row 7) follows
        // the client: a duplicate whose client hung up stops polling the store.
        var executor = settings.Executor;
        IdempotencyDecision decision;
        try
        {
            decision = plan.OneCommit
                ? await executor.BeginOneCommitAsync(id, fingerprint, CancellationToken.None).ConfigureAwait(false)
                : await executor.BeginCoreAsync(id, fingerprint, CancellationToken.None, context.RequestAborted).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // Nobody is left to answer and nothing is held: not a store failure, not a 503.
            _metrics.Count(context, IdempotencyMetrics.Outcomes.InProgress);
            context.Abort();
            return;
        }

        if (decision.Kind == IdempotencyDecisionKind.Execute)
        {
            // Row 5: the handler reads the same bytes that were fingerprinted.
            body.AttachToRequest();
            var refused = await ExecuteAsync(context, decision.Execution!, settings).ConfigureAwait(false);
            if (refused is null)
            {
                return;
            }

            // One-commit mode: the handler's reservation met a held key (or could not reach the store) before anything
            // was written; its transaction has been rolled back. Answer as if the middleware had met it up front.
            context.Response.Clear();
            decision = refused is IdempotencyReservationConflictException conflict
                ? await executor.ResolveConflictAsync(conflict, id, fingerprint, CancellationToken.None).ConfigureAwait(false)
                : new IdempotencyDecision(IdempotencyDecisionKind.StoreUnavailable, null, null, refused);
        }

        await AnswerAsync(context, decision, settings, fingerprint, request.ContentType, body.Body, key).ConfigureAwait(false);
    }

    // Reads the whole body once (rows 15 and 19), or answers and returns null.
    private async Task<RequestBodyBuffer?> ReadBodyAsync(HttpContext context, IdempotencyEndpointSettings settings, string? key)
    {
        var request = context.Request;
        var body = await RequestBodyBuffer.ReadAsync(request, settings.MaxRequestBodySize, context.RequestAborted).ConfigureAwait(false);
        switch (body.Outcome)
        {
            case RequestBodyOutcome.TooLarge:
                // Row 15.
                await RejectAsync(
                    context,
                    StatusCodes.Status413PayloadTooLarge,
                    IdempotencyProblemTypes.PayloadTooLarge,
                    "Request body too large",
                    $"Idempotent requests may carry at most {settings.MaxRequestBodySize} bytes of body. Nothing was executed.",
                    key).ConfigureAwait(false);
                return null;
            case RequestBodyOutcome.Unreadable:
                // Row 19: the server's own status; nothing reserved, the key stays usable.
                LogBodyUnreadable(_logger, request.Method, request.Path, body.FailureStatus);
                await RejectAsync(
                    context,
                    body.FailureStatus,
                    IdempotencyProblemTypes.RequestBodyUnreadable,
                    "Request body could not be read",
                    "The request body was malformed, shorter than its Content-Length, or arrived too slowly. Nothing was executed and the Idempotency-Key can be used again: resend the whole request.",
                    key).ConfigureAwait(false);
                return null;
            case RequestBodyOutcome.ClientGone:
                _metrics.Count(context, IdempotencyMetrics.Outcomes.Rejected);
                context.Abort();
                return null;
            default:
                return body;
        }
    }

    // The sender of a signed request becomes its tenant; an unverified one is answered 401 and null is returned.
    private async Task<string?> VerifySenderAsync(HttpContext context, IIdempotencySenderVerifier verifier, RequestBodyBuffer body)
    {
        var verification = await verifier.VerifyAsync(context, body.Body, context.RequestAborted).ConfigureAwait(false);
        if (verification.Sender is { } sender)
        {
            return sender;
        }

        await RejectAsync(context, StatusCodes.Status401Unauthorized, verification.ProblemType!, verification.Title!, verification.Detail!, key: null).ConfigureAwait(false);
        return null;
    }

    private IdempotencyKeyReading ReadKeyHeader(HttpRequest request)
    {
        var keyError = IdempotencyKeyParser.TryParse(
            request.Headers[IdempotencyOptions.HeaderName],
            _options.AcceptAliasHeader ? request.Headers[IdempotencyOptions.AliasHeaderName] : NoValues,
            _options.MaxKeyLength,
            out var key);
        return keyError == IdempotencyKeyError.None ? new(key, null) : new(null, DescribeKeyError(keyError));
    }

    // Rows 6, 7, 8 and 13: every answer given without running the handler.
    private async Task AnswerAsync(HttpContext context, IdempotencyDecision decision, IdempotencyEndpointSettings settings, string fingerprint, string? contentType, ReadOnlyMemory<byte> body, string key)
    {
        switch (decision.Kind)
        {
            case IdempotencyDecisionKind.Replay:
                // Row 6.
                var record = decision.Record!;
                _metrics.Count(context, IdempotencyMetrics.Outcomes.Replayed);
                LogReplayed(_logger, record.Id.Tenant, record.Id.Operation, record.Id.Key, record.Response!.StatusCode);
                await _responses.ReplayAsync(context, record.Response).ConfigureAwait(false);
                break;
            case IdempotencyDecisionKind.InProgress:
                // Row 7.
                _metrics.Count(context, IdempotencyMetrics.Outcomes.InProgress);
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
                // Row 8.
                _metrics.Count(context, IdempotencyMetrics.Outcomes.KeyReused);
                await _auditor.AuditAsync(settings.Executor, decision.Record!, fingerprint, contentType, body).ConfigureAwait(false);
                await _problems.WriteAsync(
                    context,
                    _options,
                    settings.KeyReusedStatusCode,
                    IdempotencyProblemTypes.KeyReused,
                    "Idempotency-Key reused",
                    "This Idempotency-Key was already used for a request with a different payload. Use a new key for a new operation; retries of an operation must send exactly the same request.",
                    key).ConfigureAwait(false);
                break;
            default:
                // Row 13: fail closed.
                _metrics.Count(context, IdempotencyMetrics.Outcomes.StoreUnavailable);
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

    // Runs the handler and settles the record. Returns, instead of throwing, what a one-commit handler's reservation
    // met before anything was written (a held key, or an unreachable store), or the transient database failure that
    // rolled its transaction back, for the caller to answer.
    private async Task<Exception?> ExecuteAsync(HttpContext context, IdempotencyExecution execution, IdempotencyEndpointSettings settings)
    {
        var originalBody = context.Features.GetRequiredFeature<IHttpResponseBodyFeature>();
        var originalLifetime = context.Features.Get<IHttpRequestLifetimeFeature>();
        using var capture = new ResponseCaptureStream(originalBody.Stream, settings.MaxResponseBodySize, _snapshotBodyHeaders, context.Response);
        var captureFeature = new StreamResponseBodyFeature(capture, originalBody);
        context.Features.Set<IHttpResponseBodyFeature>(captureFeature);
        context.Features.Set<IIdempotencyFeature>(new IdempotencyFeature(execution));
        IdempotencyEndpointGuard.MarkHandled(context);
        if (originalLifetime is not null)
        {
            // Kestrel signals an application's own Abort() to RequestAborted asynchronously; this sees it at once.
            context.Features.Set<IHttpRequestLifetimeFeature>(new AbortTrackingLifetimeFeature(originalLifetime, capture));
        }
        try
        {
            ExceptionDispatchInfo? failure = null;
            var bodyCut = false;
            try
            {
                await _next(context).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                failure = ExceptionDispatchInfo.Capture(ex);
            }

            if (failure is null)
            {
                try
                {
                    await captureFeature.CompleteAsync().ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is IOException or OperationCanceledException)
                {
                    // The client is gone: the handler's answer did not reach it whole. The handler ran all the same.
                    bodyCut = true;
                }
            }

            if (failure is not null && !context.Response.HasStarted && ReservationRefusal(execution, failure.SourceException) is { } refused)
            {
                return refused;
            }

            // One-commit mode: a transient database failure (the store classifies it) rolled the handler's transaction
            // back, reservation included, so nothing committed: answered as row 13, and the retry runs once.
            if (failure is not null && !context.Response.HasStarted && await execution.ReleaseAfterTransientFailureAsync(failure.SourceException).ConfigureAwait(false))
            {
                return failure.SourceException;
            }

            await FinishAsync(context, execution, settings, capture, handlerThrew: failure is not null, bodyCut).ConfigureAwait(false);
            failure?.Throw();
            return null;
        }
        finally
        {
            context.Features.Set(originalBody);
            context.Features.Set(originalLifetime);
            context.Features.Set<IIdempotencyFeature>(null);
            await execution.DisposeAsync().ConfigureAwait(false); // stops the lease renewal (row 21)
        }
    }

    // Rows 10, 11, 16, 18: what the record becomes once the handler has returned or thrown.
    private async Task FinishAsync(HttpContext context, IdempotencyExecution execution, IdempotencyEndpointSettings settings, ResponseCaptureStream capture, bool handlerThrew, bool bodyCut)
    {
        var response = context.Response;
        var status = response.StatusCode;
        if (handlerThrew && !(response.HasStarted && settings.ShouldStore(status)))
        {
            // Row 11: the handler threw before answering; a retry must be able to run it again (or resume at its
            // recovery point). A completion its own transaction committed makes the release a refused no-op.
            await ReleaseAsync(context, execution).ConfigureAwait(false);
            return;
        }

        if (execution.CompletedInTransaction)
        {
            if (!execution.IsFinished && !settings.ShouldStore(status))
            {
                // The handler wrote the completion in its transaction but answered with a status that is never stored
                // (typically: the transaction rolled back and it answered 500). Released if the completion did not
                // commit; if it did, the store refuses the release and nothing changes.
                await ReleaseAsync(context, execution).ConfigureAwait(false);
                return;
            }

            _metrics.Count(context, IdempotencyMetrics.Outcomes.Executed);
            return;
        }

        if (execution.IsFinished)
        {
            // The handler completed or released the record itself.
            _metrics.Count(context, IdempotencyMetrics.Outcomes.Executed);
            return;
        }

        if (!settings.ShouldStore(status))
        {
            await ReleaseAsync(context, execution).ConfigureAwait(false);
            return;
        }

        if (execution.IsOneCommit && !execution.IsReserved)
        {
            // One-commit mode records only what the handler's transaction committed. An answer given before reserving
            // (a validation 400) is simply not recorded; a success without a reservation means the effect, if any, ran
            // unprotected: a retry will run it again.
            _metrics.Count(context, IdempotencyMetrics.Outcomes.Executed);
            if (status is >= 200 and < 300)
            {
                LogAnsweredWithoutReserving(_logger, execution.Id.Tenant, execution.Id.Operation, execution.Id.Key, status);
            }

            return;
        }

        // The handler ran, so it never runs again for this key. A body known to be incomplete (the client went away,
        // a write failed, the handler aborted the response or threw after starting it, fewer bytes than Content-Length)
        // is never kept as if it were whole: status and headers are, and the body is marked omitted (rows 16, 18).
        var whole = !handlerThrew && !bodyCut && IsBodyWhole(context, capture);
        var id = execution.Id;
        if (!whole)
        {
            LogResponseIncomplete(_logger, id.Tenant, id.Operation, id.Key, status, capture.BytesWritten);
        }
        else if (capture.Overflowed)
        {
            LogResponseTooLarge(_logger, id.Tenant, id.Operation, id.Key, capture.BytesWritten, settings.MaxResponseBodySize);
        }

        // The body's headers as the handler left them before its first byte went out: a middleware outside Oncely
        // (response compression) sets Content-Encoding and Vary for its own output, which a replay gets from it afresh.
        var headers = _responses.SnapshotHeaders(response.Headers, capture.HeadersAtFirstWrite);
        var stored = _responses.Snapshot(status, headers, whole ? capture.Captured : ReadOnlyMemory<byte>.Empty, bodyOmitted: !whole || capture.Overflowed);
        await execution.CompleteAsync(stored, CancellationToken.None).ConfigureAwait(false);
        _metrics.Count(context, IdempotencyMetrics.Outcomes.Executed);
    }

    // A one-commit handler that has not reserved yet has written nothing that counts: its reservation's refusal (or the
    // store failing under it) is answered by the middleware, like a refusal met before the handler.
    private static Exception? ReservationRefusal(IdempotencyExecution execution, Exception failure)
    {
        if (!execution.IsOneCommit || execution.IsReserved)
        {
            return null;
        }

        for (var current = failure; current is not null; current = current.InnerException)
        {
            if (current is IdempotencyReservationConflictException or IdempotencyStoreUnavailableException)
            {
                return current;
            }
        }

        return null;
    }

    private static bool IsBodyWhole(HttpContext context, ResponseCaptureStream capture)
    {
        if (capture.WriteFailed)
        {
            return false;
        }

        if (context.Response.ContentLength is { } declared && !HttpMethods.IsHead(context.Request.Method))
        {
            // A declared length says exactly what whole means, even if the client left right after the last byte.
            return declared == capture.BytesWritten;
        }

        // Without a declared length, a client that went away (or a handler that aborted the connection) leaves no way
        // to tell whether the handler finished writing: many result types stop quietly when the request is aborted.
        return !capture.AbortedByApplication && !context.RequestAborted.IsCancellationRequested;
    }

    private sealed class AbortTrackingLifetimeFeature(IHttpRequestLifetimeFeature inner, ResponseCaptureStream capture) : IHttpRequestLifetimeFeature
    {
        public CancellationToken RequestAborted
        {
            get => inner.RequestAborted;
            set => inner.RequestAborted = value;
        }

        public void Abort()
        {
            capture.AbortedByApplication = true;
            inner.Abort();
        }
    }

    private async Task ReleaseAsync(HttpContext context, IdempotencyExecution execution)
    {
        await execution.ReleaseAsync(CancellationToken.None).ConfigureAwait(false);
        _metrics.Count(context, IdempotencyMetrics.Outcomes.Released);
    }

    private Task RejectAsync(HttpContext context, int status, string type, string title, string detail, string? key)
    {
        _metrics.Count(context, IdempotencyMetrics.Outcomes.Rejected);
        LogRejected(_logger, context.Request.Method, context.Request.Path, status, type);
        return _problems.WriteAsync(context, _options, status, type, title, detail, key);
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

    private string DescribeKeyError(IdempotencyKeyError error) => error switch
    {
        IdempotencyKeyError.Empty => "The Idempotency-Key header is empty. Send a non-empty key, for example a UUID.",
        IdempotencyKeyError.TooLong => $"The Idempotency-Key is too long. Keys may have at most {_options.MaxKeyLength} characters; a UUID is recommended.",
        IdempotencyKeyError.InvalidCharacter => "The Idempotency-Key contains a character outside visible ASCII (spaces, control characters and non-ASCII text are not allowed).",
        IdempotencyKeyError.MultipleValues => "The Idempotency-Key header was sent with several values. Send exactly one key.",
        IdempotencyKeyError.ConflictingHeaders => "Idempotency-Key and X-Idempotency-Key carry different keys. Send one header, or the same key in both.",
        _ => "The Idempotency-Key is not a well-formed structured-field string. Send the key bare (abc) or quoted (\"abc\").",
    };

    [LoggerMessage(IdempotencyEventIds.Replayed, LogLevel.Debug, "Replayed the stored answer ({StatusCode}) of {Operation} for tenant {Tenant} with key {Key}")]
    private static partial void LogReplayed(ILogger logger, string tenant, string operation, string key, int statusCode);

    [LoggerMessage(IdempotencyEventIds.ResponseTooLarge, LogLevel.Warning, "The answer of {Operation} for tenant {Tenant} with key {Key} is {Bytes} bytes, over the {Limit}-byte limit: it is stored without its body, and retries get the status and headers only")]
    private static partial void LogResponseTooLarge(ILogger logger, string tenant, string operation, string key, long bytes, int limit);

    [LoggerMessage(IdempotencyEventIds.ResponseIncomplete, LogLevel.Warning, "The answer ({StatusCode}) of {Operation} for tenant {Tenant} with key {Key} did not reach the client whole ({Bytes} bytes written; the client went away or the response was aborted): the operation ran, so it is stored as Completed without its body, and retries get the status and headers only")]
    private static partial void LogResponseIncomplete(ILogger logger, string tenant, string operation, string key, int statusCode, long bytes);

    [LoggerMessage(IdempotencyEventIds.OneCommitAnsweredWithoutReserving, LogLevel.Error, "The one-commit endpoint {Operation} answered {StatusCode} for tenant {Tenant} with key {Key} without reserving in its transaction: nothing was recorded and a retry will run it again. Call execution.ReserveInTransactionAsync(transaction) as the transaction's first statement")]
    private static partial void LogAnsweredWithoutReserving(ILogger logger, string tenant, string operation, string key, int statusCode);

    [LoggerMessage(IdempotencyEventIds.RequestRejected, LogLevel.Debug, "Refused {Method} {Path} with {StatusCode} ({ProblemType}) before running it")]
    private static partial void LogRejected(ILogger logger, string method, PathString path, int statusCode, string problemType);

    [LoggerMessage(IdempotencyEventIds.RequestBodyUnreadable, LogLevel.Debug, "The body of {Method} {Path} could not be read (the server answers {StatusCode}); nothing was recorded")]
    private static partial void LogBodyUnreadable(ILogger logger, string method, PathString path, int statusCode);

    [LoggerMessage(IdempotencyEventIds.TenantUnresolved, LogLevel.Error, "Refused {Method} {Path}: the caller is authenticated but has no NameIdentifier or sub claim; configure IdempotencyOptions.TenantResolver")]
    private static partial void LogTenantUnresolved(ILogger logger, string method, PathString path);
}
