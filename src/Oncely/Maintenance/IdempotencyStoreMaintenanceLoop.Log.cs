using Microsoft.Extensions.Logging;

namespace Oncely;

public sealed partial class IdempotencyStoreMaintenanceLoop
{
    [LoggerMessage(IdempotencyEventIds.Purged, LogLevel.Debug, "Purged {Count} expired idempotency records", EventName = "Purged")]
    private static partial void LogPurged(ILogger logger, int count);

    [LoggerMessage(IdempotencyEventIds.AuditPurged, LogLevel.Debug, "Purged {Count} key-reuse audit entries older than {Retention}", EventName = "AuditPurged")]
    private static partial void LogAuditPurged(ILogger logger, int count, TimeSpan retention);

    [LoggerMessage(IdempotencyEventIds.MaintenanceFailed, LogLevel.Warning, "Idempotency store maintenance failed: {Task}", EventName = "MaintenanceFailed")]
    private static partial void LogMaintenanceFailed(ILogger logger, Exception exception, string task);
}
