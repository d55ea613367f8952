using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Oncely.AspNetCore;

// GET {prefix}/records/detail?tenant=&operation=&key=: one record with what it stored of its first answer.
internal sealed partial class IdempotencyAdminEndpoints
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// <c>GET {prefix}/records/detail?tenant=&amp;operation=&amp;key=</c>: the record as listed, plus its stored answer when
    /// Completed (status, headers in order, the body's length; the body itself only when
    /// <see cref="IdempotencyAdminOptions.ShowStoredBodies"/> is on). Protected answers are decrypted for the operator; one
    /// that cannot be is shown as unreadable. Card numbers are masked in everything shown.
    /// </summary>
    public async Task GetRecordAsync(HttpContext context)
    {
        if (await AdministrationAsync(context).ConfigureAwait(false) is not { } admin)
        {
            return;
        }

        var query = context.Request.Query;
        var problem = FirstProblem(
            ReadText(query, "tenant", allowEmpty: true, out var tenant),
            ReadText(query, "operation", allowEmpty: false, out var operation),
            ReadKey(query, out var key));
        problem ??= (tenant, operation, key) switch
        {
            (null, _, _) => "'tenant' is required: the record's tenant, or 'tenant=' (empty) for the anonymous scope.",
            (_, null, _) => "'operation' is required: the record's operation exactly as listed (for example POST%20%2Fpayments).",
            (_, _, null) => "'key' is required: the record's idempotency key exactly as listed ('+' encoded as %2B).",
            _ => null,
        };
        if (problem is not null)
        {
            await InvalidAsync(context, problem).ConfigureAwait(false);
            return;
        }

        // The listing's view of the record (creation time, attempts), then the record itself for its stored answer.
        var id = new IdempotencyRecordId(tenant!, operation!, key!);
        var found = await CallStoreAsync(context, ct => admin.FindByKeyAsync(id.Tenant, id.Key, ct)).ConfigureAwait(false);
        if (found.Failed)
        {
            return;
        }

        if (found.Value!.FirstOrDefault(r => r.Id.Operation == id.Operation) is not { } summary)
        {
            await WriteProblemAsync(context, StatusCodes.Status404NotFound, IdempotencyAdminProblemTypes.RecordNotFound, "Record not found",
                "There is no live record for this tenant, operation and key: it was never there, was released, expired or was erased. " +
                "Tenants, operations and keys are exact and case-sensitive; list the records to check the spelling.",
                details => details.Extensions["idempotencyKey"] = id.Key).ConfigureAwait(false);
            return;
        }

        AdminStoredAnswer? answer = null;
        if (summary.State == IdempotencyRecordState.Completed)
        {
            var store = context.RequestServices.GetRequiredService<IIdempotencyStore>();
            var record = await CallStoreAsync(context, ct => store.GetAsync(id, ct)).ConfigureAwait(false);
            if (record.Failed)
            {
                return;
            }

            // Gone or changed in between (erased, expired): the record as listed, without an answer to show.
            if (record.Value is { State: IdempotencyRecordState.Completed, Response: { } stored })
            {
                answer = Shown(context, id, stored);
            }
        }

        await WriteJsonAsync(context, new AdminRecordDetail(AdminRecord.From(summary), answer), AdminJsonContext.Default.AdminRecordDetail).ConfigureAwait(false);
    }

    private AdminStoredAnswer Shown(HttpContext context, IdempotencyRecordId id, IdempotentResponse stored)
    {
        var isProtected = StoredAnswerProtection.IsProtected(stored);
        var answer = stored;
        if (isProtected)
        {
            Exception? failure = null;
            var protection = services.GetService<IdempotencyExecutor>()?.Protection;
            if (protection is null || !protection.TryUnprotect(id, stored, out answer, out failure))
            {
                LogStoredAnswerUnreadable(_logger.Value, failure is null ? null : IdempotencyRedaction.Exception(failure), _redaction.Value.Tenant(id.Tenant), IdempotencyRedaction.Text(id.Operation), _redaction.Value.Key(id.Key), stored.StatusCode,
                    protection is null ? "stored-answer protection is not turned on in this application" : "its Data Protection key was revoked or is gone, or the bytes were altered");
                return new AdminStoredAnswer(stored.StatusCode, Protected: true, Readable: false, Headers: [], stored.BodyOmitted, BodyLength: null, BodyStatus: AdminBodyStatus.Unreadable, Body: null, BodyTruncated: false);
            }
        }

        var headers = answer.Headers.Select(h => new AdminHeader(IdempotencyRedaction.Text(h.Key), IdempotencyRedaction.Text(h.Value))).ToList();
        var length = answer.Body.Length;
        var (status, body, truncated) = (answer.BodyOmitted, length, options.ShowStoredBodies) switch
        {
            (true, _, _) => (AdminBodyStatus.Omitted, null, false),
            (_, 0, _) => (AdminBodyStatus.Empty, null, false),
            (_, _, false) => (AdminBodyStatus.Hidden, null, false),
            _ => BodyText(answer.Body.Span),
        };
        if (body is not null)
        {
            LogStoredBodyShown(_logger.Value, Operator(context.User), _redaction.Value.Tenant(id.Tenant), IdempotencyRedaction.Text(id.Operation), _redaction.Value.Key(id.Key), length);
        }

        return new AdminStoredAnswer(answer.StatusCode, isProtected, Readable: true, headers, answer.BodyOmitted, length, status, body, truncated);
    }

    // Text only (strict UTF-8): a binary body is described, never returned. Masked before it is cut, so a card number
    // across the cut cannot survive as a shorter run of digits; cut on a whole character.
    private (string Status, string? Body, bool Truncated) BodyText(ReadOnlySpan<byte> bytes)
    {
        string text;
        try
        {
            text = StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return (AdminBodyStatus.Binary, null, false);
        }

        var masked = _redaction.Value.Payload(text);
        var limit = options.StoredBodyDisplayLimit;
        if (masked.Length <= limit)
        {
            return (AdminBodyStatus.Shown, masked, false);
        }

        var cut = char.IsHighSurrogate(masked[limit - 1]) ? limit - 1 : limit;
        return (AdminBodyStatus.Shown, masked[..cut], true);
    }
}
