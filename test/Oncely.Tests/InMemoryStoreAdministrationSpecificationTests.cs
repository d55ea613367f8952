using Microsoft.Extensions.Time.Testing;
using Oncely.Storage.Specification;

namespace Oncely.Tests;

public sealed class InMemoryStoreAdministrationSpecificationTests : IdempotencyStoreAdministrationSpecification
{
    private readonly FakeTimeProvider _clock = new();

    protected override ValueTask<IIdempotencyStore> CreateStoreAsync()
        => ValueTask.FromResult<IIdempotencyStore>(new InMemoryIdempotencyStore(_clock));

    protected override Task AdvanceClockAsync(TimeSpan by)
    {
        _clock.Advance(by);
        return Task.CompletedTask;
    }
}
