using Oncely.Testing;

namespace Oncely.MassTransit.Tests.Infrastructure;

/// <summary>A store that indexes keys of at most <paramref name="maxKeyLength"/> characters (as PostgreSQL's does), over a real store.</summary>
public sealed class LimitedStore(IIdempotencyStore inner, int maxKeyLength) : DelegatingIdempotencyStore(inner), IIdempotencyStoreLimits
{
    public int MaxKeyLength => maxKeyLength;
}
