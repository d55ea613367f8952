using Microsoft.Extensions.DependencyInjection;
using Oncely.StackExchangeRedis.Tests.Infrastructure;
using StackExchange.Redis;
using static Oncely.StackExchangeRedis.Tests.Infrastructure.StoreFactory;

namespace Oncely.StackExchangeRedis.Tests;

[Collection(StandaloneCollection.Name)]
public sealed class RedisIdempotencyBuilderExtensionsTests(StandaloneRedisFixture fixture)
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    [Fact]
    public async Task UseStackExchangeRedis_ConfigurationString_RegistersWorkingStoreThatOwnsItsConnection()
    {
        var services = new ServiceCollection();
        services.AddIdempotency().UseStackExchangeRedis(fixture.Server.EndPoint);
        RedisIdempotencyStore store;
        await using (var provider = services.BuildServiceProvider())
        {
            store = Assert.IsType<RedisIdempotencyStore>(provider.GetRequiredService<IIdempotencyStore>());
            Assert.Single(services, d => d.ServiceType == typeof(IIdempotencyStore));
            Assert.Equal(ReservationOutcome.Acquired, (await store.TryReserveAsync(NewId(), Fingerprint('a'), Minute, Hour, default)).Outcome);
            Assert.True(store.Multiplexer!.IsConnected);
            Assert.Equal(RedisIdempotencyStoreOptions.DefaultKeyPrefix, store.Keys.Prefix);
        }

        Assert.False(store.Multiplexer!.IsConnected); // closed with the container: the store owned it
    }

    [Fact]
    public async Task UseStackExchangeRedis_NoConnectionGiven_UsesTheMultiplexerFromServicesAndLeavesItOpen()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IConnectionMultiplexer>(fixture.Connection);
        services.AddIdempotency().UseStackExchangeRedis(o => o.KeyPrefix = "from-di");
        await using (var provider = services.BuildServiceProvider())
        {
            var store = Assert.IsType<RedisIdempotencyStore>(provider.GetRequiredService<IIdempotencyStore>());
            Assert.Same(fixture.Connection, store.Multiplexer);
            Assert.Equal("from-di", store.Keys.Prefix);
            Assert.Equal(ReservationOutcome.Acquired, (await store.TryReserveAsync(NewId(), Fingerprint('a'), Minute, Hour, default)).Outcome);
        }

        Assert.True(fixture.Connection.IsConnected);
        Assert.True(await fixture.Connection.GetDatabase().PingAsync() >= TimeSpan.Zero);
    }

    [Fact]
    public async Task UseStackExchangeRedis_ExplicitMultiplexer_UsedAndNotDisposed()
    {
        var services = new ServiceCollection();
        services.AddIdempotency().UseStackExchangeRedis(o => o.ConnectionMultiplexer = fixture.Connection);
        await using (var provider = services.BuildServiceProvider())
        {
            Assert.Same(fixture.Connection, Assert.IsType<RedisIdempotencyStore>(provider.GetRequiredService<IIdempotencyStore>()).Multiplexer);
        }

        Assert.True(fixture.Connection.IsConnected);
    }

    [Fact]
    public void UseStackExchangeRedis_NothingToConnectTo_ThrowsMessageSayingWhatToSet()
    {
        var services = new ServiceCollection();
        services.AddIdempotency().UseStackExchangeRedis(_ => { });
        using var provider = services.BuildServiceProvider();

        var ex = Assert.Throws<InvalidOperationException>(() => provider.GetRequiredService<IIdempotencyStore>());

        Assert.Contains("Configuration", ex.Message, StringComparison.Ordinal);
        Assert.Contains("IConnectionMultiplexer", ex.Message, StringComparison.Ordinal);
    }

    public static TheoryData<string, Action<RedisIdempotencyStoreOptions>> InvalidOptions => new()
    {
        { "KeyPrefix", o => o.KeyPrefix = "" },
        { "KeyPrefix", o => o.KeyPrefix = "app{1}" },
        { "KeyPrefix", o => o.KeyPrefix = new string('p', 65) },
        { "Database", o => o.Database = -2 },
        { "CommandTimeout", o => o.CommandTimeout = TimeSpan.FromMilliseconds(50) },
        { "ReplicaAcknowledgements", o => o.ReplicaAcknowledgements = -1 },
        { "ReplicaAcknowledgements", o => o.ReplicaAcknowledgements = 17 },
        { "ReplicaAcknowledgementTimeout", o => o.ReplicaAcknowledgementTimeout = TimeSpan.FromMilliseconds(5) },
        { "ReplicaAcknowledgementTimeout", o => o.ReplicaAcknowledgementTimeout = TimeSpan.FromSeconds(5) },
        { "AuditMaxEntries", o => o.AuditMaxEntries = 99 },
        { "Configuration", o => o.Configuration = " " },
        { "Configuration", o => o.Configuration = "redis:6379,connectTimeout=soon" },
    };

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public void UseStackExchangeRedis_InvalidOptions_ThrowsAtRegistrationNamingTheOption(string option, Action<RedisIdempotencyStoreOptions> configure)
    {
        var ex = Assert.Throws<InvalidOperationException>(() => new ServiceCollection().AddIdempotency().UseStackExchangeRedis(configure));

        Assert.Contains("RedisIdempotencyStoreOptions." + option, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Limits_EveryKeyLengthTheHostAllows_Accepted()
    {
        using var store = Create(fixture.Connection, NewPrefix("limits"));

        Assert.Equal(4096, ((IIdempotencyStoreLimits)store).MaxKeyLength);
        Assert.IsNotAssignableFrom<ITransactionalIdempotencyStore>(store);
    }
}
