using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Oncely.AspNetCore;

// The erase endpoints: POST {prefix}/records/erase-tenant {"tenant"} and POST {prefix}/records/erase-key {"tenant","key"}.
// Two endpoints, not one with an optional key: a body that forgets its key must never erase a whole tenant.
internal sealed partial class IdempotencyAdminEndpoints
{
    /// <summary>How long an erasure may take before the API answers <c>503</c> (a tenant's erasure can touch many records); at least <c>StoreTimeout</c>.</summary>
    internal static readonly TimeSpan ErasureTimeout = TimeSpan.FromMinutes(1);

    private const string EraseTenantShape = "{\"tenant\": \"…\"}";
    private const string EraseKeyShape = "{\"tenant\": \"…\", \"key\": \"…\"}";

    /// <summary><c>POST {prefix}/records/erase-tenant</c> with <c>{"tenant"}</c>: erases the tenant's records (except those in progress) and audit entries.</summary>
    public Task EraseTenantAsync(HttpContext context) => EraseAsync(context, byKey: false);

    /// <summary><c>POST {prefix}/records/erase-key</c> with <c>{"tenant","key"}</c>: erases one tenant's key under every operation (except records in progress) and its audit entries.</summary>
    public Task EraseKeyAsync(HttpContext context) => EraseAsync(context, byKey: true);

    private async Task EraseAsync(HttpContext context, bool byKey)
    {
        var eraser = context.RequestServices.GetRequiredService<IdempotencyEraser>();
        if (!eraser.IsSupported)
        {
            var store = context.RequestServices.GetRequiredService<IIdempotencyStore>().GetType().Name;
            await WriteProblemAsync(context, StatusCodes.Status501NotImplemented, IdempotencyAdminProblemTypes.NotSupported, "Erasure not supported",
                $"The idempotency store in use ({store}) cannot erase records: it does not implement IIdempotencyStoreErasure. " +
                "Every store shipped with Oncely does; a store that wraps one must pass the capability on.").ConfigureAwait(false);
            return;
        }

        var shape = byKey ? EraseKeyShape : EraseTenantShape;
        var (body, problem, aborted) = await ReadJsonBodyAsync(context, AdminJsonContext.Default.AdminEraseRequest, shape).ConfigureAwait(false);
        if (aborted)
        {
            return;
        }

        problem ??= body switch
        {
            null => $"Send a JSON body: {shape}.",
            { Tenant: null } => $"'tenant' is required: the tenant whose records to erase, or \"\" for the anonymous scope. Send {shape}.",
            { Key: null or "" } when byKey => $"'key' is required: the idempotency key to erase, exactly. Send {shape}. To erase a whole tenant, use records/erase-tenant.",
            { Key: not null } when !byKey => $"This endpoint erases a whole tenant and takes no 'key'. To erase one key, use records/erase-key with {EraseKeyShape}.",
            _ => null,
        };
        if (problem is not null)
        {
            await InvalidAsync(context, problem).ConfigureAwait(false);
            return;
        }

        var tenant = body!.Tenant!;
        var key = body.Key;
        var who = Operator(context.User);
        var erased = await CallStoreAsync(
            context,
            ct => key is null ? eraser.EraseTenantAsync(tenant, who, ct) : eraser.EraseKeyAsync(tenant, key, who, ct),
            ErasureTimeout).ConfigureAwait(false);
        if (erased.Failed)
        {
            return;
        }

        var result = erased.Value!;
        var scope = key is null ? $"tenant '{tenant}'" : $"key '{key}' of tenant '{tenant}'";
        if (result.FoundNothing)
        {
            await WriteProblemAsync(context, StatusCodes.Status404NotFound, IdempotencyAdminProblemTypes.ErasureNothingFound, "Nothing to erase",
                $"The store holds no record and no audit entry for {scope}: nothing was erased. Check the spelling (tenants and keys are exact and case-sensitive; \"\" is the anonymous scope). The request is audited all the same.",
                details => AddErasure(details.Extensions, tenant, key, result)).ConfigureAwait(false);
            return;
        }

        if (!result.IsComplete)
        {
            await WriteProblemAsync(context, StatusCodes.Status409Conflict, IdempotencyAdminProblemTypes.ErasureIncomplete, "Records in progress were kept",
                $"{result.InProgress.Count} record(s) of {scope} are in progress and were not erased: their operations may be running, and erasing a record would let a retry run its operation twice. " +
                $"Everything else was erased ({result.RecordsErased} record(s), {result.AuditEntriesErased} audit entr(ies)). Erase again once they complete, or release a stuck one first (records/release).",
                details => AddErasure(details.Extensions, tenant, key, result)).ConfigureAwait(false);
            return;
        }

        context.Response.Headers.CacheControl = "no-store";
        await WriteJsonAsync(context, AdminErasure.From(tenant, key, result), AdminJsonContext.Default.AdminErasure).ConfigureAwait(false);
    }

    private static void AddErasure(IDictionary<string, object?> extensions, string tenant, string? key, IdempotencyErasureResult result)
    {
        extensions["tenant"] = tenant;
        extensions["key"] = key;
        extensions["recordsErased"] = result.RecordsErased;
        extensions["auditEntriesErased"] = result.AuditEntriesErased;

        // As a JsonElement, so that whichever serializer writes the problem (an IProblemDetailsService's too) writes it as is.
        extensions["inProgress"] = JsonSerializer.SerializeToElement([.. result.InProgress.Select(AdminRecord.From)], AdminJsonContext.Default.AdminRecordArray);
    }
}
