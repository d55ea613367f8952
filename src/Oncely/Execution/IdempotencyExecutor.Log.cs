using Microsoft.Extensions.Logging;

namespace Oncely;

/// <summary>The executor's events: the decisions it makes before an attempt runs. Event ids in <see cref="IdempotencyEventIds"/>.</summary>
public sealed partial class IdempotencyExecutor
{
    [LoggerMessage(EventId = IdempotencyEventIds.InProgress, EventName = nameof(IdempotencyEventIds.InProgress), Level = LogLevel.Debug,
        Message = "Idempotent operation {Operation} for tenant {Tenant} with key {Key} is already in progress; the duplicate was refused")]
    private static partial void LogInProgress(ILogger logger, string tenant, string operation, string key);

    [LoggerMessage(EventId = IdempotencyEventIds.StoreUnavailable, EventName = nameof(IdempotencyEventIds.StoreUnavailable), Level = LogLevel.Error,
        Message = "The idempotency store is unavailable; {Operation} for tenant {Tenant} with key {Key} was refused without running")]
    private static partial void LogStoreUnavailable(ILogger logger, Exception exception, string tenant, string operation, string key);

    [LoggerMessage(EventId = IdempotencyEventIds.TakenOver, EventName = nameof(IdempotencyEventIds.TakenOver), Level = LogLevel.Warning,
        Message = "Idempotent operation {Operation} for tenant {Tenant} with key {Key}: an expired lease was taken over with fencing token {FencingToken}, resuming at {RecoveryPoint}")]
    private static partial void LogTakenOver(ILogger logger, string tenant, string operation, string key, long fencingToken, string? recoveryPoint);

    [LoggerMessage(EventId = IdempotencyEventIds.ReservationConflict, EventName = nameof(IdempotencyEventIds.ReservationConflict), Level = LogLevel.Debug,
        Message = "Idempotent operation {Operation} for tenant {Tenant} with key {Key}: the one-commit reservation met a held key; answered {Decision}")]
    private static partial void LogReservationConflict(ILogger logger, string tenant, string operation, string key, IdempotencyDecisionKind decision);
}
