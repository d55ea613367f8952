using Microsoft.Extensions.Logging;

namespace Oncely;

/// <summary>
/// An attempt's events: how its transitions (complete, release, renew) ended. Logged with the executor's logger, so
/// under its category. Event ids in <see cref="IdempotencyEventIds"/>.
/// </summary>
public sealed partial class IdempotencyExecution
{
    [LoggerMessage(EventId = IdempotencyEventIds.Executed, EventName = nameof(IdempotencyEventIds.Executed), Level = LogLevel.Debug,
        Message = "Idempotent operation {Operation} for tenant {Tenant} with key {Key} completed with status {StatusCode}")]
    private static partial void LogExecuted(ILogger logger, string tenant, string operation, string key, int statusCode);

    [LoggerMessage(EventId = IdempotencyEventIds.Released, EventName = nameof(IdempotencyEventIds.Released), Level = LogLevel.Information,
        Message = "Idempotent operation {Operation} for tenant {Tenant} with key {Key} did not complete; record released (recovery point: {RecoveryPoint})")]
    private static partial void LogReleased(ILogger logger, string tenant, string operation, string key, string? recoveryPoint);

    [LoggerMessage(EventId = IdempotencyEventIds.LeaseLost, EventName = nameof(IdempotencyEventIds.LeaseLost), Level = LogLevel.Warning,
        Message = "Idempotent operation {Operation} for tenant {Tenant} with key {Key}: fencing token {FencingToken} is stale (the lease was taken over); nothing was written")]
    private static partial void LogLeaseLost(ILogger logger, string tenant, string operation, string key, long fencingToken);

    [LoggerMessage(EventId = IdempotencyEventIds.ReleaseRefusedCompleted, EventName = nameof(IdempotencyEventIds.ReleaseRefusedCompleted), Level = LogLevel.Debug,
        Message = "Idempotent operation {Operation} for tenant {Tenant} with key {Key}: nothing to release, its own transaction already completed the record (fencing token {FencingToken}); retries replay that answer")]
    private static partial void LogReleaseRefusedCompleted(ILogger logger, string tenant, string operation, string key, long fencingToken);

    [LoggerMessage(EventId = IdempotencyEventIds.ReleaseRefusedGone, EventName = nameof(IdempotencyEventIds.ReleaseRefusedGone), Level = LogLevel.Information,
        Message = "Idempotent operation {Operation} for tenant {Tenant} with key {Key}: nothing to release, the record (fencing token {FencingToken}) no longer exists (expired or purged)")]
    private static partial void LogReleaseRefusedGone(ILogger logger, string tenant, string operation, string key, long fencingToken);

    [LoggerMessage(EventId = IdempotencyEventIds.CompletionFailed, EventName = nameof(IdempotencyEventIds.CompletionFailed), Level = LogLevel.Error,
        Message = "Idempotent operation {Operation} for tenant {Tenant} with key {Key} RAN but its completion could not be stored; the record stays InProgress and a retry after the lease ({Lease}) will run the operation again unless it is transactional")]
    private static partial void LogCompletionFailed(ILogger logger, Exception exception, string tenant, string operation, string key, TimeSpan lease);

    [LoggerMessage(EventId = IdempotencyEventIds.ReservationNotCommitted, EventName = nameof(IdempotencyEventIds.ReservationNotCommitted), Level = LogLevel.Information,
        Message = "Idempotent operation {Operation} for tenant {Tenant} with key {Key}: its one-commit reservation was not committed (the operation's transaction rolled back), so nothing is recorded and a retry runs the operation again")]
    private static partial void LogReservationNotCommitted(ILogger logger, string tenant, string operation, string key);

    [LoggerMessage(EventId = IdempotencyEventIds.OneCommitReservationRolledBack, EventName = nameof(IdempotencyEventIds.OneCommitReservationRolledBack), Level = LogLevel.Debug,
        Message = "Idempotent operation {Operation} for tenant {Tenant} with key {Key}: nothing to release; this attempt's one-commit reservation (fencing token {FencingToken}) rolled back with its transaction and another attempt has reserved the key since (fencing token {HolderFencingToken}, {HolderState}); no lease was taken over")]
    private static partial void LogOneCommitReservationRolledBack(ILogger logger, string tenant, string operation, string key, long fencingToken, long holderFencingToken, IdempotencyRecordState holderState);

    [LoggerMessage(EventId = IdempotencyEventIds.OneCommitTransientFailure, EventName = nameof(IdempotencyEventIds.OneCommitTransientFailure), Level = LogLevel.Error,
        Message = "Idempotent operation {Operation} for tenant {Tenant} with key {Key}: its one-commit transaction failed with a transient database error, so it committed nothing; answered 503 with Retry-After, and the client's retry runs it once")]
    private static partial void LogOneCommitTransientFailure(ILogger logger, Exception exception, string tenant, string operation, string key);

    [LoggerMessage(EventId = IdempotencyEventIds.LeaseRenewalFailed, EventName = nameof(IdempotencyEventIds.LeaseRenewalFailed), Level = LogLevel.Warning,
        Message = "Renewing the lease of {Operation} for tenant {Tenant} with key {Key} failed; renewal is tried again, but if it keeps failing a retry may take the operation over once the lease ({Lease}) runs out")]
    private static partial void LogLeaseRenewalFailed(ILogger logger, Exception exception, string tenant, string operation, string key, TimeSpan lease);

    [LoggerMessage(EventId = IdempotencyEventIds.LeaseRenewalRefused, EventName = nameof(IdempotencyEventIds.LeaseRenewalRefused), Level = LogLevel.Warning,
        Message = "Idempotent operation {Operation} for tenant {Tenant} with key {Key}: the store refused to renew the lease of fencing token {FencingToken} (it was taken over, or the record is gone); renewal stopped and this attempt's completion will be refused")]
    private static partial void LogLeaseRenewalRefused(ILogger logger, string tenant, string operation, string key, long fencingToken);

    [LoggerMessage(EventId = IdempotencyEventIds.ReleaseFailed, EventName = nameof(IdempotencyEventIds.ReleaseFailed), Level = LogLevel.Warning,
        Message = "Releasing idempotency record for {Operation}, tenant {Tenant}, key {Key} failed; retries are refused until the lease ({Lease}) ends")]
    private static partial void LogReleaseFailed(ILogger logger, Exception exception, string tenant, string operation, string key, TimeSpan lease);
}
