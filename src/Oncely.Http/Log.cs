using Microsoft.Extensions.Logging;

namespace Oncely.Http;

/// <summary>
/// The handler's log messages. Event ids are stable and never reused (see docs/client-handler.md). Keys and URIs are
/// written with card numbers masked (<see cref="PrimaryAccountNumbers"/>).
/// </summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1, EventName = "IdempotencyKeyGenerated", Level = LogLevel.Debug,
        Message = "Attached idempotency key {IdempotencyKey} to {Method} {Uri}.")]
    public static partial void KeyGenerated(ILogger logger, string idempotencyKey, HttpMethod method, string? uri);

    [LoggerMessage(EventId = 2, EventName = "IdempotencyKeyKept", Level = LogLevel.Trace,
        Message = "Kept the idempotency key {IdempotencyKey} already present on {Method} {Uri}.")]
    public static partial void KeyKept(ILogger logger, string idempotencyKey, HttpMethod method, string? uri);

    [LoggerMessage(EventId = 3, EventName = "IdempotencyConflictRetry", Level = LogLevel.Information,
        Message = "The server answered 409 for idempotency key {IdempotencyKey} (problem type {ProblemType}); re-sending in {Delay} (re-send {Attempt} of {MaxAttempts}).")]
    public static partial void ConflictRetry(ILogger logger, string idempotencyKey, string? problemType, TimeSpan delay, int attempt, int maxAttempts);

    [LoggerMessage(EventId = 4, EventName = "IdempotencyConflictRetriesExhausted", Level = LogLevel.Warning,
        Message = "The server still answered 409 for idempotency key {IdempotencyKey} after {MaxAttempts} re-sends; returning the last answer.")]
    public static partial void ConflictRetriesExhausted(ILogger logger, string idempotencyKey, int maxAttempts);

    [LoggerMessage(EventId = 5, EventName = "IdempotencyKeyReused", Level = LogLevel.Warning,
        Message = "The server refused idempotency key {IdempotencyKey} because it was already used for a different request (status {StatusCode}); not re-sending. Use a fresh key per logical operation.")]
    public static partial void KeyReused(ILogger logger, string idempotencyKey, int statusCode);

    [LoggerMessage(EventId = 6, EventName = "IdempotencyHandlerInsideResiliencePipeline", Level = LogLevel.Warning,
        Message = "The idempotency key handler runs inside a resilience pipeline. Retries keep the key, but hedged attempts are clones made before this handler runs and each gets a different key. Call AddIdempotencyKeys() before AddStandardResilienceHandler()/AddStandardHedgingHandler().")]
    public static partial void InsideResiliencePipeline(ILogger logger);
}
