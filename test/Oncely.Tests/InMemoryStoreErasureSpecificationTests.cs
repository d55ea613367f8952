using Microsoft.Extensions.Time.Testing;
using Oncely.Storage.Specification;

namespace Oncely.Tests;

public sealed class InMemoryStoreErasureSpecificationTests : IdempotencyStoreErasureSpecification
{
    private readonly FakeTimeProvider _clock = new();

    protected override TimeProvider Clock => _clock;

    protected override ValueTask<IIdempotencyStore> CreateStoreAsync()
        => ValueTask.FromResult<IIdempotencyStore>(new InMemoryIdempotencyStore(_clock));

    protected override Task AdvanceClockAsync(TimeSpan by)
    {
        _clock.Advance(by);
        return Task.CompletedTask;
    }
}
