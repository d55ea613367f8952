using Microsoft.Extensions.Logging;

namespace Oncely;

internal sealed partial class KeyReuseAuditor
{
    [LoggerMessage(IdempotencyEventIds.KeyReused, LogLevel.Warning, "AUDIT key reused with a different payload: tenant {Tenant}, operation {Operation}, key {Key}, stored fingerprint {StoredFingerprint}, attempted fingerprint {AttemptedFingerprint}, payload {Payload}", EventName = "KeyReused")]
    private static partial void LogKeyReused(ILogger logger, string tenant, string operation, string key, string storedFingerprint, string attemptedFingerprint, string payload);

    [LoggerMessage(IdempotencyEventIds.AuditFailed, LogLevel.Warning, "Writing the key-reuse audit entry for {Operation}, tenant {Tenant}, key {Key} failed", EventName = "AuditFailed")]
    private static partial void LogAuditFailed(ILogger logger, Exception exception, string tenant, string operation, string key);

    [LoggerMessage(IdempotencyEventIds.AuditRedactionFailed, LogLevel.Warning, "The payload redactor failed on the key-reuse audit entry for {Operation}, tenant {Tenant}, key {Key}; a summary without the payload was kept instead", EventName = "AuditRedactionFailed")]
    private static partial void LogRedactionFailed(ILogger logger, Exception exception, string tenant, string operation, string key);
}
