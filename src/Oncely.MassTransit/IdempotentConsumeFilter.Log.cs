using Microsoft.Extensions.Logging;

namespace Oncely.MassTransit;

internal sealed partial class IdempotentConsumeFilter<TMessage>
{
    [LoggerMessage(IdempotencyEventIds.MessageReplayed, LogLevel.Debug, "Message with key {Key} was already consumed by {Operation} for tenant {Tenant}; acknowledged without running (redelivery {RedeliveryCount}, retry {RetryAttempt})", EventName = "MessageReplayed")]
    private static partial void LogReplayed(ILogger logger, string tenant, string operation, string key, int redeliveryCount, int retryAttempt);

    [LoggerMessage(IdempotencyEventIds.MessageInProgress, LogLevel.Debug, "Message with key {Key} is being consumed by another delivery of {Operation} for tenant {Tenant}; handed back to retry (retry {RetryAttempt})", EventName = "MessageInProgress")]
    private static partial void LogInProgress(ILogger logger, string tenant, string operation, string key, int retryAttempt);
}
