using Microsoft.Extensions.Logging;

namespace Oncely.MassTransit;

internal sealed partial class IdempotentConsumerServices
{
    [LoggerMessage(IdempotencyEventIds.MessageRejected, LogLevel.Warning, "A message was refused by {Operation} without running ({Reason}): {Detail}", EventName = "MessageRejected")]
    private static partial void LogRejected(ILogger logger, string operation, MessageRejection reason, string detail);
}
