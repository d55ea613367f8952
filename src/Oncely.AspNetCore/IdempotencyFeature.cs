namespace Oncely.AspNetCore;

/// <summary>The <see cref="IIdempotencyFeature"/> the middleware sets while an idempotent operation runs.</summary>
internal sealed class IdempotencyFeature(IdempotencyExecution execution) : IIdempotencyFeature
{
    public IdempotencyExecution Execution { get; } = execution;
}
