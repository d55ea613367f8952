using Microsoft.Extensions.Logging;

namespace Oncely.AspNetCore;

// Log messages. Event ids are IdempotencyEventIds' and never change; each event's name is its id's name.
internal sealed partial class InMemoryStoreWarning
{
    [LoggerMessage(EventId = IdempotencyEventIds.InMemoryStoreOutsideDevelopment, EventName = "InMemoryStoreOutsideDevelopment", Level = LogLevel.Warning, Message = "Oncely is using the in-memory idempotency store in the {Environment} environment: its records are lost on every restart and are not shared " +
        "between instances, so a retry that arrives after a restart, or reaches another instance, runs the operation again. " +
        "Choose a shared store for production: AddIdempotency().UsePostgreSql(...) (several instances) or .UseSqlite(...) (one machine)")]
    private static partial void LogInMemoryStore(ILogger logger, string environment);
}
