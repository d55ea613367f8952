using Microsoft.Extensions.Time.Testing;
using Oncely.Storage.Specification;

namespace Oncely.AspNetCore.Tests;

/// <summary>The operator API over HTTP on the in-memory store.</summary>
public sealed class InMemoryOperatorApiTests : OperatorApiSpecification
{
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero));

    protected override TimeProvider Clock => _clock;

    protected override ValueTask<IIdempotencyStore> CreateStoreAsync() => ValueTask.FromResult<IIdempotencyStore>(new InMemoryIdempotencyStore(_clock));

    protected override Task AdvanceClockAsync(TimeSpan by)
    {
        _clock.Advance(by);
        return Task.CompletedTask;
    }
}
