namespace Oncely.AspNetCore;

/// <summary>The key source a <c>WithIdempotencyKeyFrom…</c> convention chose for an endpoint; the last one added wins.</summary>
internal sealed class IdempotencyKeySourceMetadata(IdempotencyKeySource source)
{
    public IdempotencyKeySource Source { get; } = source;
}
