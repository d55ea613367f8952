using Microsoft.Extensions.Logging;

namespace Oncely.AspNetCore;

// The middleware's log messages. Event ids are IdempotencyEventIds' and never change; each event's name is its id's name.
internal sealed partial class IdempotencyMiddleware
{
    [LoggerMessage(EventId = IdempotencyEventIds.Replayed, EventName = "Replayed", Level = LogLevel.Debug, Message = "Replayed the stored answer ({StatusCode}) of {Operation} for tenant {Tenant} with key {Key}")]
    private static partial void LogReplayed(ILogger logger, string tenant, string operation, string key, int statusCode);

    [LoggerMessage(EventId = IdempotencyEventIds.ResponseTooLarge, EventName = "ResponseTooLarge", Level = LogLevel.Warning, Message = "The answer of {Operation} for tenant {Tenant} with key {Key} is {Bytes} bytes, over the {Limit}-byte limit: it is stored without its body, and retries get the status and headers only")]
    private static partial void LogResponseTooLarge(ILogger logger, string tenant, string operation, string key, long bytes, int limit);

    [LoggerMessage(EventId = IdempotencyEventIds.ResponseIncomplete, EventName = "ResponseIncomplete", Level = LogLevel.Warning, Message = "The answer ({StatusCode}) of {Operation} for tenant {Tenant} with key {Key} did not reach the client whole ({Bytes} bytes written; the client went away or the response was aborted): the operation ran, so it is stored as Completed without its body, and retries get the status and headers only")]
    private static partial void LogResponseIncomplete(ILogger logger, string tenant, string operation, string key, int statusCode, long bytes);

    [LoggerMessage(EventId = IdempotencyEventIds.OneCommitAnsweredWithoutReserving, EventName = "OneCommitAnsweredWithoutReserving", Level = LogLevel.Error, Message = "The one-commit endpoint {Operation} answered {StatusCode} for tenant {Tenant} with key {Key} without reserving in its transaction: nothing was recorded and a retry will run it again. Call execution.ReserveInTransactionAsync(transaction) as the transaction's first statement")]
    private static partial void LogAnsweredWithoutReserving(ILogger logger, string tenant, string operation, string key, int statusCode);

    [LoggerMessage(EventId = IdempotencyEventIds.RequestRejected, EventName = "RequestRejected", Level = LogLevel.Debug, Message = "Refused {Method} {Path} with {StatusCode} ({ProblemType}) before running it")]
    private static partial void LogRejected(ILogger logger, string method, string path, int statusCode, string problemType);

    [LoggerMessage(EventId = IdempotencyEventIds.RequestBodyUnreadable, EventName = "RequestBodyUnreadable", Level = LogLevel.Debug, Message = "The body of {Method} {Path} could not be read (the server answers {StatusCode}); nothing was recorded")]
    private static partial void LogBodyUnreadable(ILogger logger, string method, string path, int statusCode);

    [LoggerMessage(EventId = IdempotencyEventIds.TenantUnresolved, EventName = "TenantUnresolved", Level = LogLevel.Error, Message = "Refused {Method} {Path}: the caller is authenticated but has no NameIdentifier or sub claim; configure IdempotencyOptions.TenantResolver")]
    private static partial void LogTenantUnresolved(ILogger logger, string method, string path);
}
