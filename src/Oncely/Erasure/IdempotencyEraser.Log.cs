using Microsoft.Extensions.Logging;

namespace Oncely;

// Log messages. Event ids are IdempotencyEventIds' and never change; each event's name is its id's name. No payload.
public sealed partial class IdempotencyEraser
{
    [LoggerMessage(IdempotencyEventIds.RecordsErased, LogLevel.Warning, "ERASURE of {Scope} for tenant {Tenant}, requested by {RequestedBy}: {RecordsErased} records and {AuditEntriesErased} audit entries erased, {InProgressKept} records in progress kept; a retry of an erased key runs its operation again", EventName = "RecordsErased")]
    private static partial void LogErased(ILogger logger, string scope, string tenant, int recordsErased, int auditEntriesErased, int inProgressKept, string requestedBy);

    [LoggerMessage(IdempotencyEventIds.ErasureAuditFailed, LogLevel.Warning, "The erasure of {Scope} for tenant {Tenant} happened, but writing its audit entry failed", EventName = "ErasureAuditFailed")]
    private static partial void LogAuditFailed(ILogger logger, Exception exception, string tenant, string scope);
}
