using System.Diagnostics.Metrics;
using System.Globalization;
using System.Security.Claims;
using System.Text.Json;
using System.Xml;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace Oncely.AspNetCore;

/// <summary>
/// The operator API's handlers (see <c>docs/operator-api.md</c>): list and look up records, release a stuck one (fenced),
/// show one record with its stored answer, read the key-reuse audit. Plain request delegates: every parameter is parsed here, so every refusal is a problem+json
/// that says what to send, never an empty <c>400</c> or a <c>500</c>.
/// </summary>
internal sealed partial class IdempotencyAdminEndpoints(IServiceProvider services, IdempotencyAdminOptions options)
{
    /// <summary>The counter of operator releases: <c>oncely.admin.releases</c>, tag <c>oncely.release.outcome</c>.</summary>
    internal const string ReleasesInstrument = "oncely.admin.releases";

    internal const string ReleaseOutcomeTag = "oncely.release.outcome";

    private const int MaxReleaseBodyBytes = 16 * 1024;

    private readonly Lazy<Counter<long>> _releases = new(() => services.GetRequiredService<IMeterFactory>()
        .Create(IdempotencyDiagnostics.MeterName)
        .CreateCounter<long>(ReleasesInstrument, "{record}", "Records operators asked to release through the operator API, by outcome."));

    private readonly Lazy<IdempotencyRedaction> _redaction = new(() => services.GetService<IdempotencyRedaction>() ?? IdempotencyRedaction.Default);

    private readonly Lazy<ILogger> _logger = new(() => services.GetRequiredService<ILoggerFactory>().CreateLogger(IdempotencyEndpointValidation.AdminLogCategory));

    /// <summary><c>GET {prefix}/records?tenant=&amp;key=&amp;operation=&amp;state=&amp;olderThan=&amp;createdBefore=&amp;limit=&amp;continuation=</c>.</summary>
    public async Task ListRecordsAsync(HttpContext context)
    {
        if (await AdministrationAsync(context).ConfigureAwait(false) is not { } admin)
        {
            return;
        }

        var query = context.Request.Query;
        var problem = FirstProblem(
            ReadText(query, "tenant", allowEmpty: true, out var tenant),
            ReadKey(query, out var key),
            ReadText(query, "operation", allowEmpty: false, out var operation),
            ReadState(query, out var state),
            ReadCreatedBefore(context, query, out var createdBefore),
            ReadLimit(query, out var limit),
            ReadText(query, "continuation", allowEmpty: false, out var continuation));
        if (problem is null && key is not null && tenant is null)
        {
            problem = "A lookup by 'key' needs the 'tenant' too (keys are per tenant): add tenant=<tenant id>, or 'tenant=' (empty) for the anonymous scope.";
        }

        if (problem is null && key is not null && continuation is not null)
        {
            problem = "A lookup by 'key' returns every match at once: leave 'continuation' out.";
        }

        if (problem is not null)
        {
            await InvalidAsync(context, problem).ConfigureAwait(false);
            return;
        }

        if (key is not null)
        {
            var found = await CallStoreAsync(context, ct => admin.FindByKeyAsync(tenant!, key, ct)).ConfigureAwait(false);
            if (found.Failed)
            {
                return;
            }

            var matches = found.Value!
                .Where(r => (operation is null || r.Id.Operation == operation) && (state is null || r.State == state) && (createdBefore is null || r.CreatedAt <= createdBefore))
                .Select(AdminRecord.From)
                .ToList();
            await WriteJsonAsync(context, new AdminRecordPage(matches, null), AdminJsonContext.Default.AdminRecordPage).ConfigureAwait(false);
            return;
        }

        var page = await CallStoreAsync(context, ct => admin.ListRecordsAsync(
            new IdempotencyRecordQuery { Tenant = tenant, Operation = operation, State = state, CreatedBefore = createdBefore, Limit = limit, Continuation = continuation },
            ct)).ConfigureAwait(false);
        if (!page.Failed)
        {
            await WriteJsonAsync(context, new AdminRecordPage([.. page.Value!.Records.Select(AdminRecord.From)], page.Value.Continuation), AdminJsonContext.Default.AdminRecordPage).ConfigureAwait(false);
        }
    }

    /// <summary><c>GET {prefix}/audit?tenant=&amp;operation=&amp;key=&amp;limit=&amp;continuation=</c>.</summary>
    public async Task ListAuditAsync(HttpContext context)
    {
        if (await AdministrationAsync(context).ConfigureAwait(false) is not { } admin)
        {
            return;
        }

        var query = context.Request.Query;
        var problem = FirstProblem(
            ReadText(query, "tenant", allowEmpty: true, out var tenant),
            ReadText(query, "operation", allowEmpty: false, out var operation),
            ReadKey(query, out var key),
            ReadLimit(query, out var limit),
            ReadText(query, "continuation", allowEmpty: false, out var continuation));
        if (problem is not null)
        {
            await InvalidAsync(context, problem).ConfigureAwait(false);
            return;
        }

        var page = await CallStoreAsync(context, ct => admin.ListAuditAsync(
            new KeyReuseAuditQuery { Tenant = tenant, Operation = operation, Key = key, Limit = limit, Continuation = continuation },
            ct)).ConfigureAwait(false);
        if (!page.Failed)
        {
            await WriteJsonAsync(context, new AdminAuditPage([.. page.Value!.Entries.Select(Readable)], page.Value.Continuation), AdminJsonContext.Default.AdminAuditPage).ConfigureAwait(false);
        }
    }

    // Stored-answer protection: an operator (this API is behind the operator policy) sees the payload decrypted; one whose
    // key was revoked or is gone is shown as such (event 1051), never as ciphertext.
    private AdminAuditEntry Readable(KeyReuseAuditEntry entry)
    {
        if (!StoredAnswerProtection.IsProtected(entry.Payload))
        {
            return AdminAuditEntry.From(entry);
        }

        var payload = services.GetService<IdempotencyExecutor>()?.Protection?.UnprotectAuditPayload(entry.Id, entry.Payload);
        if (payload is null)
        {
            StoredAnswerProtection.LogAuditPayloadUnreadable(_logger.Value, _redaction.Value.Tenant(entry.Id.Tenant), IdempotencyRedaction.Text(entry.Id.Operation), _redaction.Value.Key(entry.Id.Key));
            payload = UnreadableAuditPayload;
        }

        return AdminAuditEntry.From(entry with { Payload = payload });
    }

    /// <summary>What the operator API shows for an audit payload whose Data Protection key was revoked or is gone.</summary>
    internal const string UnreadableAuditPayload = "[protected payload: its Data Protection key was revoked or is gone]";

    /// <summary>
    /// <c>POST {prefix}/records/release</c> with <c>{"tenant","operation","key","fencingToken"}</c>: the store's fenced
    /// release, so a record that changed since the operator looked is left alone.
    /// </summary>
    public async Task ReleaseAsync(HttpContext context)
    {
        if (await AdministrationAsync(context).ConfigureAwait(false) is null)
        {
            return;
        }

        var (request, problem) = await ReadReleaseRequestAsync(context).ConfigureAwait(false);
        if (request is null)
        {
            if (problem is not null)
            {
                await InvalidAsync(context, problem).ConfigureAwait(false);
            }

            return;
        }

        var store = context.RequestServices.GetRequiredService<IIdempotencyStore>();
        var id = new IdempotencyRecordId(request.Tenant!, request.Operation!, request.Key!);
        var token = request.FencingToken!.Value;
        var released = await CallStoreAsync(context, ct => store.TryReleaseAsync(id, token, ct)).ConfigureAwait(false);
        if (released.Failed)
        {
            return;
        }

        var who = Operator(context.User);
        if (released.Value)
        {
            LogReleased(_logger.Value, who, _redaction.Value.Tenant(id.Tenant), IdempotencyRedaction.Text(id.Operation), _redaction.Value.Key(id.Key), token);
            CountRelease("released");
            context.Response.StatusCode = StatusCodes.Status204NoContent;
            return;
        }

        // Refused: one read tells the operator why (the release itself was the atomic, fenced decision).
        var current = await CallStoreAsync(context, ct => store.GetAsync(id, ct)).ConfigureAwait(false);
        if (current.Failed)
        {
            return;
        }

        var record = current.Value;
        var (outcome, status, type, title, detail) = record switch
        {
            null => ("not_found", StatusCodes.Status404NotFound, IdempotencyAdminProblemTypes.RecordNotFound, "Record not found",
                "There is no live record for this tenant, operation and key: it was never there, was already released, or expired. Nothing to release; list the records to check the spelling."),
            { State: IdempotencyRecordState.Completed } => ("completed", StatusCodes.Status409Conflict, IdempotencyAdminProblemTypes.RecordCompleted, "Record completed",
                "The record is Completed: its answer is stored and replayed to every retry, so it is never released. Nothing was changed."),
            _ => ("stale", StatusCodes.Status409Conflict, IdempotencyAdminProblemTypes.FencingTokenStale, "Fencing token stale",
                $"The record now carries fencing token {record.FencingToken}, not {token}: another attempt took it over since it was looked at. Nothing was changed. " +
                "Look the record up again and, if it is still stuck, release it with its current token."),
        };
        LogReleaseRefused(_logger.Value, who, _redaction.Value.Tenant(id.Tenant), IdempotencyRedaction.Text(id.Operation), _redaction.Value.Key(id.Key), token, outcome);
        CountRelease(outcome);
        await WriteProblemAsync(context, status, type, title, detail, details =>
        {
            details.Extensions["idempotencyKey"] = id.Key;
            if (record is not null)
            {
                details.Extensions["currentFencingToken"] = record.FencingToken;
                details.Extensions["state"] = record.State.ToString();
            }
        }).ConfigureAwait(false);
    }

    private async Task<IIdempotencyStoreAdministration?> AdministrationAsync(HttpContext context)
    {
        if (context.RequestServices.GetRequiredService<IIdempotencyStore>() is IIdempotencyStoreAdministration admin)
        {
            return admin;
        }

        // Logged as a warning at start-up too (event 1304).
        var store = context.RequestServices.GetRequiredService<IIdempotencyStore>().GetType().Name;
        await WriteProblemAsync(context, StatusCodes.Status501NotImplemented, IdempotencyAdminProblemTypes.NotSupported, "Operator API not supported",
            $"The idempotency store in use ({store}) cannot list, look up or audit its records: it does not implement IIdempotencyStoreAdministration. " +
            "Every store shipped with Oncely does; a store that wraps one must pass the capability on.").ConfigureAwait(false);
        return null;
    }

    private static async Task<(AdminReleaseRequest? Request, string? Problem)> ReadReleaseRequestAsync(HttpContext context)
    {
        var (body, problem, aborted) = await ReadJsonBodyAsync(context, AdminJsonContext.Default.AdminReleaseRequest, ReleaseShape).ConfigureAwait(false);
        if (aborted || problem is not null)
        {
            return (null, problem);
        }

        problem = body switch
        {
            null => $"Send a JSON body: {ReleaseShape}.",
            { Tenant: null } => $"'tenant' is required: the record's tenant, or \"\" for the anonymous scope. Send {ReleaseShape}.",
            { Operation: null or "" } => $"'operation' is required: the record's operation exactly as listed (for example \"POST /payments\"). Send {ReleaseShape}.",
            { Key: null or "" } => $"'key' is required: the record's idempotency key exactly as listed. Send {ReleaseShape}.",
            { FencingToken: null } => $"'fencingToken' is required: the record's fencing token as listed, so that a record that changed since is left alone. Send {ReleaseShape}.",
            _ => null,
        };
        return problem is null ? (body, null) : (null, problem);
    }

    /// <summary>
    /// Reads a small JSON body (at most <see cref="MaxReleaseBodyBytes"/>). <c>Aborted</c> when the client went away or the
    /// framing is broken (the server answers that itself); otherwise the body, or a problem that says what to send.
    /// </summary>
    private static async Task<(T? Body, string? Problem, bool Aborted)> ReadJsonBodyAsync<T>(HttpContext context, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo, string shape)
        where T : class
    {
        var request = context.Request;
        if (request.ContentLength > MaxReleaseBodyBytes)
        {
            return (null, $"The body is {request.ContentLength} bytes; this endpoint takes a small JSON object of at most {MaxReleaseBodyBytes} bytes.", false);
        }

        using var buffer = new MemoryStream();
        try
        {
            var chunk = new byte[4096];
            int read;
            while ((read = await request.Body.ReadAsync(chunk, context.RequestAborted).ConfigureAwait(false)) > 0)
            {
                buffer.Write(chunk, 0, read);
                if (buffer.Length > MaxReleaseBodyBytes)
                {
                    return (null, $"This endpoint takes a small JSON object of at most {MaxReleaseBodyBytes} bytes.", false);
                }
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or BadHttpRequestException)
        {
            context.Abort();
            return (null, null, true);
        }

        try
        {
            return (buffer.Length == 0 ? null : JsonSerializer.Deserialize(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), typeInfo), null, false);
        }
        catch (JsonException e)
        {
            return (null, $"The body is not the JSON object this endpoint takes ({e.Message}). Send {shape}.", false);
        }
    }

    private const string ReleaseShape = "{\"tenant\": \"…\", \"operation\": \"…\", \"key\": \"…\", \"fencingToken\": 123}";

    private static string? FirstProblem(params string?[] problems) => problems.FirstOrDefault(p => p is not null);

    private static string? ReadText(IQueryCollection query, string name, bool allowEmpty, out string? value)
    {
        value = null;
        if (!query.TryGetValue(name, out var values))
        {
            return null;
        }

        if (values.Count != 1)
        {
            return $"Give '{name}' at most once.";
        }

        value = values[0] ?? string.Empty;
        return value.Length == 0 && !allowEmpty ? $"'{name}' is empty: give a value or leave it out." : null;
    }

    private static string? ReadKey(IQueryCollection query, out string? key)
    {
        var problem = ReadText(query, "key", allowEmpty: false, out key);
        if (problem is null && key is not null && key.Contains(' ', StringComparison.Ordinal))
        {
            // Keys are visible ASCII, so a space is a '+' that the query string decoded: it must be sent as %2B.
            problem = "'key' contains a space, which no idempotency key can: a '+' in a query string means a space, so encode it as %2B (curl: --data-urlencode with -G).";
        }

        return problem;
    }

    private static string? ReadState(IQueryCollection query, out IdempotencyRecordState? state)
    {
        state = null;
        var problem = ReadText(query, "state", allowEmpty: false, out var text);
        if (problem is not null || text is null)
        {
            return problem;
        }

        switch (text.Replace("_", string.Empty, StringComparison.Ordinal).ToUpperInvariant())
        {
            case "INPROGRESS":
                state = IdempotencyRecordState.InProgress;
                return null;
            case "COMPLETED":
                state = IdempotencyRecordState.Completed;
                return null;
            default:
                return $"'state' is '{text}': use InProgress or Completed.";
        }
    }

    private static string? ReadLimit(IQueryCollection query, out int limit)
    {
        limit = 50;
        var problem = ReadText(query, "limit", allowEmpty: false, out var text);
        if (problem is not null || text is null)
        {
            return problem;
        }

        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out limit) && limit is >= 1 and <= 500
            ? null
            : $"'limit' is '{text}': give a page size from 1 to 500 (default 50).";
    }

    // olderThan (a duration: ISO-8601 "PT15M" or "00:15:00") and createdBefore (an instant, ISO-8601) both bound the
    // creation time; given together, both apply.
    private static string? ReadCreatedBefore(HttpContext context, IQueryCollection query, out DateTimeOffset? createdBefore)
    {
        createdBefore = null;
        var problem = FirstProblem(
            ReadText(query, "createdBefore", allowEmpty: false, out var instant),
            ReadText(query, "olderThan", allowEmpty: false, out var age));
        if (problem is not null)
        {
            return problem;
        }

        if (instant is not null)
        {
            if (!DateTimeOffset.TryParse(instant, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var parsed))
            {
                return $"'createdBefore' is '{instant}': give an ISO-8601 instant in UTC such as 2026-11-24T12:00:00Z (a '+01:00' offset must be sent as %2B01:00).";
            }

            createdBefore = parsed;
        }

        if (age is not null)
        {
            if (ParseDuration(age) is not { } duration || duration < TimeSpan.Zero)
            {
                return $"'olderThan' is '{age}': give a duration such as PT15M (ISO-8601) or 00:15:00.";
            }

            var bound = context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow() - duration;
            createdBefore = createdBefore is { } earlier && earlier < bound ? earlier : bound;
        }

        return null;
    }

    private static TimeSpan? ParseDuration(string text)
    {
        if (text.StartsWith('P'))
        {
            try
            {
                return XmlConvert.ToTimeSpan(text);
            }
            catch (FormatException)
            {
                return null;
            }
        }

        return TimeSpan.TryParseExact(text, "c", CultureInfo.InvariantCulture, out var span) ? span : null;
    }

    private readonly record struct StoreResult<T>(bool Failed, T? Value);

    /// <summary>
    /// One store call, bounded by <see cref="IdempotencyEngineOptions.StoreTimeout"/>. A refused argument (a damaged
    /// continuation) answers <c>400</c>; a store failure or timeout answers <c>503</c> and is logged; a client that went
    /// away gets nothing.
    /// </summary>
    private async Task<StoreResult<T>> CallStoreAsync<T>(HttpContext context, Func<CancellationToken, ValueTask<T>> call, TimeSpan? atLeast = null)
    {
        var options = context.RequestServices.GetRequiredService<IOptions<IdempotencyOptions>>().Value;
        var clock = context.RequestServices.GetRequiredService<TimeProvider>();
        using var timeout = new CancellationTokenSource(atLeast is { } bound && bound > options.StoreTimeout ? bound : options.StoreTimeout, clock);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, context.RequestAborted);
        try
        {
            return new StoreResult<T>(false, await call(linked.Token).ConfigureAwait(false));
        }
        catch (ArgumentException e)
        {
            await InvalidAsync(context, e.Message).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            LogStoreUnavailable(_logger.Value, IdempotencyRedaction.Exception(e), context.Request.Method, _redaction.Value.Path(context.Request.Path.Value));
            await WriteProblemAsync(context, StatusCodes.Status503ServiceUnavailable, IdempotencyProblemTypes.StoreUnavailable, "Idempotency store unavailable",
                "The idempotency store could not be reached in time; nothing was changed. Try again shortly.", retryAfter: options.StoreUnavailableRetryAfter).ConfigureAwait(false);
        }

        return new StoreResult<T>(true, default);
    }

    private static Task InvalidAsync(HttpContext context, string detail)
        => WriteProblemAsync(context, StatusCodes.Status400BadRequest, IdempotencyAdminProblemTypes.InvalidRequest, "Invalid operator API request", detail);

    private static async Task WriteProblemAsync(HttpContext context, int status, string type, string title, string detail, Action<ProblemDetails>? extend = null, TimeSpan? retryAfter = null)
    {
        var options = context.RequestServices.GetRequiredService<IOptions<IdempotencyOptions>>().Value;
        var response = context.Response;
        response.StatusCode = status;
        if (retryAfter is { } delay)
        {
            response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(delay.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        }

        var problem = new ProblemDetails { Type = options.ProblemTypeBaseUri + type, Title = title, Status = status, Detail = detail, Instance = context.Request.Path.Value };
        extend?.Invoke(problem);
        if (context.RequestServices.GetService<IProblemDetailsService>() is { } service
            && await service.TryWriteAsync(new ProblemDetailsContext { HttpContext = context, ProblemDetails = problem }).ConfigureAwait(false))
        {
            return;
        }

        response.ContentType = "application/problem+json";
        await JsonSerializer.SerializeAsync(response.Body, problem, AdminJsonContext.Default.ProblemDetails, context.RequestAborted).ConfigureAwait(false);
    }

    private static Task WriteJsonAsync<T>(HttpContext context, T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo)
    {
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.Headers.CacheControl = "no-store";
        return context.Response.WriteAsJsonAsync(value, typeInfo, contentType: null, context.RequestAborted);
    }

    private void CountRelease(string outcome)
    {
        var counter = _releases.Value;
        if (counter.Enabled)
        {
            counter.Add(1, new KeyValuePair<string, object?>(ReleaseOutcomeTag, outcome));
        }
    }

    private static string Operator(ClaimsPrincipal user)
        => user.Identity?.Name
            ?? user.FindFirst(ClaimTypes.NameIdentifier)?.Value
            ?? user.FindFirst("sub")?.Value
            ?? (user.Identity?.IsAuthenticated == true ? "(authenticated, unnamed)" : "(anonymous)");
}
