using Microsoft.Extensions.DependencyInjection;

namespace Oncely.Tests;

public class IdempotencyBuilderExtensionsTests
{
    private sealed class Builder : IIdempotencyBuilder
    {
        public IServiceCollection Services { get; } = new ServiceCollection();
    }

    [Fact]
    public void UseStore_FactoryTypedAsInterface_ResolvesWithoutRecursion()
    {
        // Regression: TStore inferred as IIdempotencyStore registered a forwarder that resolved itself forever.
        var builder = new Builder();
        var store = new InMemoryIdempotencyStore();
        builder.UseStore<IIdempotencyStore>(_ => store);
        using var provider = builder.Services.BuildServiceProvider();
        Assert.Same(store, provider.GetRequiredService<IIdempotencyStore>());
    }

    [Fact]
    public void UseStore_ReplacesEarlierStore_AndExposesConcreteType()
    {
        var builder = new Builder();
        builder.Services.AddSingleton<IIdempotencyStore>(new InMemoryIdempotencyStore());
        var chosen = new InMemoryIdempotencyStore();
        builder.UseStore(_ => chosen);
        using var provider = builder.Services.BuildServiceProvider();
        Assert.Same(chosen, provider.GetRequiredService<IIdempotencyStore>());
        Assert.Same(chosen, provider.GetRequiredService<InMemoryIdempotencyStore>());
        Assert.Single(builder.Services, d => d.ServiceType == typeof(IIdempotencyStore));
    }
}

public class StoredHeadersTests
{
    [Fact]
    public void SerializeDeserialize_OrderDuplicatesAndUnicode_RoundTrip()
    {
        IReadOnlyList<KeyValuePair<string, string>> headers =
        [
            new("Content-Type", "application/json; charset=utf-8"),
            new("Link", "</a>; rel=\"next\""),
            new("Link", "</b>; rel=\"prev\""),
            new("X-Note", "café ☕"),
        ];
        Assert.Equal(headers, StoredHeaders.Deserialize(StoredHeaders.Serialize(headers)));
    }

    [Fact]
    public void Serialize_NoHeaders_EmptyArray_AndNullReadsAsNone()
    {
        Assert.Equal("[]", StoredHeaders.Serialize([]));
        Assert.Empty(StoredHeaders.Deserialize(null));
        Assert.Empty(StoredHeaders.Deserialize("[ ]"));
    }
}
