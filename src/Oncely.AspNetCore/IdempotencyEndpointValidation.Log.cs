using Microsoft.Extensions.Logging;

namespace Oncely.AspNetCore;

// Log messages. Event ids are IdempotencyEventIds' and never change; each event's name is its id's name.
internal sealed partial class IdempotencyEndpointValidation
{
    [LoggerMessage(EventId = IdempotencyEventIds.AdministrationNotSupported, EventName = "AdministrationNotSupported", Level = LogLevel.Warning, Message = "The operator API (MapIdempotencyAdmin) is mapped, but the idempotency store {Store} does not implement IIdempotencyStoreAdministration, so its endpoints answer 501. " +
        "Every store shipped with Oncely implements it: if {Store} wraps one, pass the capability on (implement the interface by delegating to the inner store)")]
    private static partial void LogAdministrationNotSupported(ILogger logger, string store);
}
