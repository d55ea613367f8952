using Microsoft.Extensions.Logging;

namespace Oncely;

/// <summary>The events of stored-answer protection. Event ids in <see cref="IdempotencyEventIds"/> (1050–1059).</summary>
internal sealed partial class StoredAnswerProtection
{
    [LoggerMessage(EventId = IdempotencyEventIds.StoredAnswerUnreadable, EventName = nameof(IdempotencyEventIds.StoredAnswerUnreadable), Level = LogLevel.Error,
        Message = "Idempotent operation {Operation} for tenant {Tenant} with key {Key} completed with status {StatusCode}, but its stored answer cannot be decrypted (its Data Protection key was revoked or is gone, or the stored bytes were altered): the retry was refused and the operation did not run again")]
    public static partial void LogStoredAnswerUnreadable(ILogger logger, Exception? exception, string tenant, string operation, string key, int statusCode);

    [LoggerMessage(EventId = IdempotencyEventIds.AuditPayloadUnreadable, EventName = nameof(IdempotencyEventIds.AuditPayloadUnreadable), Level = LogLevel.Warning,
        Message = "The key-reuse audit entry of {Operation} for tenant {Tenant} with key {Key} has a payload that cannot be decrypted (its Data Protection key was revoked or is gone); it is shown without it")]
    public static partial void LogAuditPayloadUnreadable(ILogger logger, string tenant, string operation, string key);

    [LoggerMessage(EventId = IdempotencyEventIds.UnprotectedAnswerReplayed, EventName = nameof(IdempotencyEventIds.UnprotectedAnswerReplayed), Level = LogLevel.Debug,
        Message = "Idempotent operation {Operation} for tenant {Tenant} with key {Key}: its answer was stored before stored-answer protection was turned on and was replayed as stored")]
    public static partial void LogUnprotectedAnswerReplayed(ILogger logger, string tenant, string operation, string key);
}
