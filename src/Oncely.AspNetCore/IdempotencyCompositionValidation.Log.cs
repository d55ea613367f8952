using Microsoft.Extensions.Logging;

namespace Oncely.AspNetCore;

// Log messages. Event ids are IdempotencyEventIds' and never change; each event's name is its id's name.
internal sealed partial class IdempotencyCompositionValidation
{
    [LoggerMessage(EventId = IdempotencyEventIds.OutputCachedIdempotentEndpoint, EventName = "OutputCachedIdempotentEndpoint", Level = LogLevel.Warning, Message = "Endpoint {Endpoint} is idempotent and also output-cached: a cached answer is served without Oncely seeing the request, so a new Idempotency-Key could get another operation's answer without anything running. Remove CacheOutput()/[OutputCache] from effectful endpoints (the default output-cache policy never caches POST anyway); see docs/composition.md")]
    private static partial void LogOutputCachedIdempotentEndpoint(ILogger logger, string? endpoint);
}
