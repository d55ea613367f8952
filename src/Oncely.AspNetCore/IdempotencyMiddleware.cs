using System.Runtime.ExceptionServices;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Oncely.AspNetCore;

/// <summary>
/// Applies the decision table to endpoints that carry <see cref="IIdempotencyMetadata"/>: validate the key, identify the
/// caller, read and fingerprint the body, reserve, then run once and store, or replay, or refuse. Each job has its own
/// type: <see cref="IdempotencyEndpoint"/> (the endpoint, read once: its key source, operation and settings),
/// <see cref="IdempotencyRefusals"/> (every refusal's status, type and words, by row), <see cref="RequestBodyBuffer"/> (the body),
/// <see cref="ResponseCaptureStream"/> and <see cref="IdempotentResponseWriter"/> (capture and replay),
/// <see cref="KeyReuseAuditor"/> (row 8's audit).
/// </summary>
internal sealed partial class IdempotencyMiddleware
{
    private readonly RequestDelegate _next;
    private readonly IdempotencyOptions _options;
    private readonly IdempotencyProblemWriter _problems;
    private readonly IdempotencyMetrics _metrics;
    private readonly IdempotentResponseWriter _responses;
    private readonly Func<object, List<KeyValuePair<string, string>>> _snapshotBodyHeaders;
    private readonly KeyReuseAuditor _auditor;
    private readonly IdempotencyEndpointCache _endpoints;
    private readonly FingerprintCache _fingerprints = new();
    private readonly ILogger _logger;
    private readonly IdempotencyRedaction _redaction;

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
        _endpoints = new IdempotencyEndpointCache(_options, executor);
        _logger = logger;
        _redaction = executor.Redaction;
    }

    public Task InvokeAsync(HttpContext context)
    {
        // Row 1: endpoints that are not idempotent pass through untouched.
        var routed = context.GetEndpoint();
        var endpoint = routed is null ? null : _endpoints.For(routed);
        if (endpoint is null)
        {
            return _next(context);
        }

        return _metrics.IsObserving ? InvokeObservedAsync(context, endpoint) : InvokeIdempotentAsync(context, endpoint);
    }

    // While something listens: a span around the whole decision (the handler's own spans nest under it), and the
    // request's outcome and duration. The span is started here, in an async method, so it is never left current for
    // the middleware before this one.
    private async Task InvokeObservedAsync(HttpContext context, IdempotencyEndpoint endpoint)
    {
        var attempt = _metrics.Start(context, endpoint.OperationFor(context.Request.Method));
        try
        {
            await InvokeIdempotentAsync(context, endpoint).ConfigureAwait(false);
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

    private async Task InvokeIdempotentAsync(HttpContext context, IdempotencyEndpoint endpoint)
    {
        var request = context.Request;

        // A signed request (a webhook delivery) is verified before anything else, and a key kept in the body needs the
        // body: such endpoints read it first. A sender that cannot be verified is refused before the store is touched.
        using var early = endpoint.ReadsBodyFirst ? await ReadBodyAsync(context, endpoint.Settings, key: null).ConfigureAwait(false) : null;
        if (endpoint.ReadsBodyFirst && early is null)
        {
            return;
        }

        var sender = endpoint.SenderVerifier is { } verifier ? await VerifySenderAsync(context, verifier, early!).ConfigureAwait(false) : null;
        if (endpoint.SenderVerifier is not null && sender is null)
        {
            return;
        }

        // Row 4: a malformed key is refused before anything else.
        var source = endpoint.KeySource;
        var reading = source.Read(request, early?.Body ?? default, _options.MaxKeyLength);
        var key = reading.Key;
        if (reading.Problem is { } keyProblem)
        {
            await RejectAsync(context, source.InvalidRefusal, keyProblem, key: null).ConfigureAwait(false);
            return;
        }

        if (key is null)
        {
            if (!endpoint.KeyRequired)
            {
                // Row 3: no key, no record.
                _metrics.Count(context, OutcomeTagValues.NoKey);
                IdempotencyEndpointGuard.MarkHandled(context);
                early?.AttachToRequest();
                await _next(context).ConfigureAwait(false);
                return;
            }

            // Row 2.
            await RejectAsync(context, source.MissingRefusal, source.MissingDetail(request), key: null).ConfigureAwait(false);
            return;
        }

        // The scope's first half. Refusals here happen before the operation starts, so nothing is recorded.
        var tenant = sender ?? _options.TenantResolver(context);
        if (string.IsNullOrEmpty(tenant))
        {
            if (DefaultTenantResolver.IsAuthenticated(context))
            {
                // Row 9c.
                LogTenantUnresolved(_logger, request.Method, _redaction.Path(request.Path.Value));
                await RejectAsync(context, IdempotencyRefusals.Row09cTenantUnresolved, IdempotencyRefusals.Row09cDetail, key).ConfigureAwait(false);
                return;
            }

            if (!endpoint.AllowAnonymous)
            {
                // Row 9a.
                await RejectAsync(context, IdempotencyRefusals.Row09aCallerUnauthenticated, IdempotencyRefusals.Row09aDetail, key).ConfigureAwait(false);
                return;
            }

            tenant = IdempotencyRecordId.AnonymousTenant;
        }

        using var body = early ?? await ReadBodyAsync(context, endpoint.Settings, key).ConfigureAwait(false);
        if (body is null)
        {
            return;
        }

        var id = new IdempotencyRecordId(tenant, endpoint.OperationFor(request.Method), key);
        var fingerprint = RequestFingerprint.Compute(
            new FingerprintInput(request.Method, request.PathBase.Add(request.Path).Value ?? "/")
            {
                // Without a query string, Request.Query is not touched: reading it creates the request's query feature.
                Query = request.QueryString.HasValue ? QueryPairs(request.Query) : [],
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
        var executor = endpoint.Executor;
        IdempotencyDecision decision;
        try
        {
            decision = endpoint.OneCommit
                ? await executor.BeginOneCommitAsync(id, fingerprint, CancellationToken.None).ConfigureAwait(false)
                : await executor.BeginCoreAsync(id, fingerprint, CancellationToken.None, context.RequestAborted).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // Nobody is left to answer and nothing is held: not a store failure, not a 503.
            _metrics.Count(context, OutcomeTagValues.InProgress);
            context.Abort();
            return;
        }

        if (decision.Kind == IdempotencyDecisionKind.Execute)
        {
            // Row 5: the handler reads the same bytes that were fingerprinted.
            body.AttachToRequest();
            var refused = await ExecuteAsync(context, decision.Execution!, endpoint.Settings).ConfigureAwait(false);
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

        await AnswerAsync(context, decision, endpoint, fingerprint, request.ContentType, body.Body, key).ConfigureAwait(false);
    }

    // Reads the whole body once (rows 15 and 19), or answers and returns null.
    private async ValueTask<RequestBodyBuffer?> ReadBodyAsync(HttpContext context, IdempotencyEndpointSettings settings, string? key)
    {
        var request = context.Request;
        var body = await RequestBodyBuffer.ReadAsync(request, settings.MaxRequestBodySize, context.RequestAborted).ConfigureAwait(false);
        switch (body.Outcome)
        {
            case RequestBodyOutcome.TooLarge:
                // Row 15.
                await RejectAsync(context, IdempotencyRefusals.Row15PayloadTooLarge, IdempotencyRefusals.Row15Detail(settings.MaxRequestBodySize), key).ConfigureAwait(false);
                return null;
            case RequestBodyOutcome.Unreadable:
                // Row 19: the server's own status; nothing reserved, the key stays usable.
                LogBodyUnreadable(_logger, request.Method, _redaction.Path(request.Path.Value), body.FailureStatus);
                await RejectAsync(context, IdempotencyRefusals.Row19RequestBodyUnreadable, IdempotencyRefusals.Row19Detail, key, body.FailureStatus).ConfigureAwait(false);
                return null;
            case RequestBodyOutcome.ClientGone:
                _metrics.Count(context, OutcomeTagValues.Rejected);
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

        // Row 9b: the verifier's own refusal (a webhook's signature or timestamp).
        _metrics.Count(context, OutcomeTagValues.Rejected);
        LogRejected(_logger, context.Request.Method, _redaction.Path(context.Request.Path.Value), StatusCodes.Status401Unauthorized, verification.ProblemType!);
        await _problems.WriteAsync(context, _options, StatusCodes.Status401Unauthorized, verification.ProblemType!, verification.Title!, verification.Detail!, key: null).ConfigureAwait(false);
        return null;
    }

    // Rows 6, 7, 8 and 13: every answer given without running the handler.
    private async Task AnswerAsync(HttpContext context, IdempotencyDecision decision, IdempotencyEndpoint endpoint, string fingerprint, string? contentType, ReadOnlyMemory<byte> body, string key)
    {
        switch (decision.Kind)
        {
            case IdempotencyDecisionKind.Replay:
                // Row 6.
                var record = decision.Record!;
                _metrics.Count(context, OutcomeTagValues.Replayed);
                if (_logger.IsEnabled(LogLevel.Debug))
                {
                    LogReplayed(_logger, _redaction.Tenant(record.Id.Tenant), IdempotencyRedaction.Text(record.Id.Operation), _redaction.Key(record.Id.Key), record.Response!.StatusCode);
                }

                await _responses.ReplayAsync(context, record.Response!).ConfigureAwait(false);
                break;
            case IdempotencyDecisionKind.StoredAnswerUnreadable:
                // Row 6a: the operation ran; its protected answer cannot be decrypted (event 1050 logged by the engine).
                _metrics.Count(context, OutcomeTagValues.AnswerUnreadable);
                await WriteAsync(context, IdempotencyRefusals.Row06aStoredAnswerUnreadable, IdempotencyRefusals.Row06aDetail(decision.Record!.Response?.StatusCode ?? 0), key).ConfigureAwait(false);
                break;
            case IdempotencyDecisionKind.InProgress:
                // Row 7.
                _metrics.Count(context, OutcomeTagValues.InProgress);
                await WriteAsync(context, IdempotencyRefusals.Row07RequestInProgress, IdempotencyRefusals.Row07Detail, key, retryAfter: _options.InProgressRetryAfter).ConfigureAwait(false);
                break;
            case IdempotencyDecisionKind.KeyReused:
                // Row 8.
                _metrics.Count(context, OutcomeTagValues.KeyReused);
                await _auditor.AuditAsync(endpoint.Executor, decision.Record!, fingerprint, contentType, body).ConfigureAwait(false);
                await WriteAsync(context, IdempotencyRefusals.Row08KeyReused, IdempotencyRefusals.Row08Detail, key, endpoint.Settings.KeyReusedStatusCode).ConfigureAwait(false);
                break;
            default:
                // Row 13: fail closed.
                _metrics.Count(context, OutcomeTagValues.StoreUnavailable);
                await WriteAsync(context, IdempotencyRefusals.Row13StoreUnavailable, IdempotencyRefusals.Row13Detail, key, retryAfter: _options.StoreUnavailableRetryAfter).ConfigureAwait(false);
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
        var captureFeature = new ResponseCaptureFeature(originalBody, capture, execution, originalLifetime);
        context.Features.Set<IHttpResponseBodyFeature>(captureFeature);
        context.Features.Set<IIdempotencyFeature>(captureFeature);
        IdempotencyEndpointGuard.MarkHandled(context);
        if (originalLifetime is not null)
        {
            // Kestrel signals an application's own Abort() to RequestAborted asynchronously; this sees it at once.
            context.Features.Set<IHttpRequestLifetimeFeature>(captureFeature);
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
        if (handlerThrew && !(response.HasStarted && settings.ReplayRule.Stores(status)))
        {
            // Row 11: the handler threw before answering; a retry must be able to run it again (or resume at its
            // recovery point). A completion its own transaction committed makes the release a refused no-op.
            await ReleaseAsync(context, execution).ConfigureAwait(false);
            return;
        }

        if (execution.CompletedInTransaction)
        {
            if (!execution.IsFinished && !settings.ReplayRule.Stores(status))
            {
                // The handler wrote the completion in its transaction but answered with a status that is never stored
                // (typically: the transaction rolled back and it answered 500). Released if the completion did not
                // commit; if it did, the store refuses the release and nothing changes.
                await ReleaseAsync(context, execution).ConfigureAwait(false);
                return;
            }

            _metrics.Count(context, OutcomeTagValues.Executed);
            return;
        }

        if (execution.IsFinished)
        {
            // The handler completed or released the record itself.
            _metrics.Count(context, OutcomeTagValues.Executed);
            return;
        }

        if (!settings.ReplayRule.Stores(status))
        {
            await ReleaseAsync(context, execution).ConfigureAwait(false);
            return;
        }

        if (execution.IsOneCommit && !execution.IsReserved)
        {
            // One-commit mode records only what the handler's transaction committed. An answer given before reserving
            // (a validation 400) is simply not recorded; a success without a reservation means the effect, if any, ran
            // unprotected: a retry will run it again.
            _metrics.Count(context, OutcomeTagValues.Executed);
            if (status is >= 200 and < 300)
            {
                LogAnsweredWithoutReserving(_logger, _redaction.Tenant(execution.Id.Tenant), IdempotencyRedaction.Text(execution.Id.Operation), _redaction.Key(execution.Id.Key), status);
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
            LogResponseIncomplete(_logger, _redaction.Tenant(id.Tenant), IdempotencyRedaction.Text(id.Operation), _redaction.Key(id.Key), status, capture.BytesWritten);
        }
        else if (capture.Overflowed)
        {
            LogResponseTooLarge(_logger, _redaction.Tenant(id.Tenant), IdempotencyRedaction.Text(id.Operation), _redaction.Key(id.Key), capture.BytesWritten, settings.MaxResponseBodySize);
        }

        // The body's headers as the handler left them before its first byte went out: a middleware outside Oncely
        // (response compression) sets Content-Encoding and Vary for its own output, which a replay gets from it afresh.
        var headers = _responses.SnapshotHeaders(response.Headers, capture.HeadersAtFirstWrite);
        var stored = _responses.Snapshot(status, headers, whole ? capture.Captured : ReadOnlyMemory<byte>.Empty, bodyOmitted: !whole || capture.Overflowed);
        await execution.CompleteAsync(stored, CancellationToken.None).ConfigureAwait(false);
        _metrics.Count(context, OutcomeTagValues.Executed);
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

    private async Task ReleaseAsync(HttpContext context, IdempotencyExecution execution)
    {
        await execution.ReleaseAsync(CancellationToken.None).ConfigureAwait(false);
        _metrics.Count(context, OutcomeTagValues.Released);
    }

    // A refusal before the operation starts (rows 2, 4, 9a, 9b, 9c, 15, 19): counted and logged as rejected.
    private Task RejectAsync(HttpContext context, IdempotencyRefusal refusal, string detail, string? key, int? status = null)
    {
        _metrics.Count(context, OutcomeTagValues.Rejected);
        LogRejected(_logger, context.Request.Method, _redaction.Path(context.Request.Path.Value), status ?? refusal.Status, refusal.ProblemType);
        return WriteAsync(context, refusal, detail, key, status);
    }

    private Task WriteAsync(HttpContext context, IdempotencyRefusal refusal, string detail, string? key, int? status = null, TimeSpan? retryAfter = null)
        => _problems.WriteAsync(context, _options, status ?? refusal.Status, refusal.ProblemType, refusal.Title, detail, key, retryAfter);

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
}
