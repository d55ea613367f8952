using Microsoft.Extensions.Logging;

namespace Oncely.Webhooks;

// Log messages. Event ids are IdempotencyEventIds' and never change; each event's name is its id's name.
internal sealed partial class StandardWebhookVerifier
{
    [LoggerMessage(EventId = IdempotencyEventIds.WebhookSignatureInvalid, EventName = "WebhookSignatureInvalid", Level = LogLevel.Warning, Message = "Refused a webhook delivery to {Method} {Path} with 401 before recording or running anything: {Reason}")]
    private static partial void LogSignatureInvalid(ILogger logger, string method, string path, string reason);

    [LoggerMessage(EventId = IdempotencyEventIds.WebhookTimestampOutOfTolerance, EventName = "WebhookTimestampOutOfTolerance", Level = LogLevel.Warning, Message = "Refused a correctly signed webhook delivery {WebhookId} from {Sender} with 401: it was signed at {SignedAt:O}, now is {Now:O}, tolerance {Tolerance}")]
    private static partial void LogTimestampOutOfTolerance(ILogger logger, string sender, string webhookId, DateTimeOffset signedAt, DateTimeOffset now, TimeSpan tolerance);

    [LoggerMessage(EventId = IdempotencyEventIds.WebhookVerified, EventName = "WebhookVerified", Level = LogLevel.Debug, Message = "Verified webhook delivery {WebhookId} from {Sender}")]
    private static partial void LogVerified(ILogger logger, string sender, string webhookId);
}
