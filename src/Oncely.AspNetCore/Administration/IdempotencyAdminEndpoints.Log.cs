using Microsoft.Extensions.Logging;

namespace Oncely.AspNetCore;

// Log messages. Event ids are IdempotencyEventIds' and never change; each event's name is its id's name.
internal sealed partial class IdempotencyAdminEndpoints
{
    [LoggerMessage(EventId = IdempotencyEventIds.RecordReleasedByOperator, EventName = "RecordReleasedByOperator", Level = LogLevel.Warning, Message = "Operator {Operator} released the idempotency record of {Operation} for tenant {Tenant} with key {Key} (fencing token {FencingToken}): a retry of that key will run the operation again")]
    private static partial void LogReleased(ILogger logger, string @operator, string tenant, string operation, string key, long fencingToken);

    [LoggerMessage(EventId = IdempotencyEventIds.OperatorReleaseRefused, EventName = "OperatorReleaseRefused", Level = LogLevel.Information, Message = "Operator {Operator} asked to release the idempotency record of {Operation} for tenant {Tenant} with key {Key} (fencing token {FencingToken}); refused: {Reason}")]
    private static partial void LogReleaseRefused(ILogger logger, string @operator, string tenant, string operation, string key, long fencingToken, string reason);

    [LoggerMessage(EventId = IdempotencyEventIds.AdministrationStoreUnavailable, EventName = "AdministrationStoreUnavailable", Level = LogLevel.Error, Message = "The operator API could not reach the idempotency store for {Method} {Path}; it answered 503")]
    private static partial void LogStoreUnavailable(ILogger logger, Exception exception, string method, string path);

    [LoggerMessage(EventId = IdempotencyEventIds.OperatorStoredAnswerUnreadable, EventName = "OperatorStoredAnswerUnreadable", Level = LogLevel.Warning, Message = "The operator API showed the idempotency record of {Operation} for tenant {Tenant} with key {Key} (status {StatusCode}) without its stored headers and body: they are protected and cannot be decrypted ({Reason})")]
    private static partial void LogStoredAnswerUnreadable(ILogger logger, Exception? exception, string tenant, string operation, string key, int statusCode, string reason);

    [LoggerMessage(EventId = IdempotencyEventIds.StoredBodyShownToOperator, EventName = "StoredBodyShownToOperator", Level = LogLevel.Information, Message = "Operator {Operator} was shown the stored body ({Length} bytes) of the idempotency record of {Operation} for tenant {Tenant} with key {Key}")]
    private static partial void LogStoredBodyShown(ILogger logger, string @operator, string tenant, string operation, string key, int length);
}
