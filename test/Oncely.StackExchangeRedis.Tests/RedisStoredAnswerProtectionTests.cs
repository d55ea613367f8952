using System.Text;
using Oncely.StackExchangeRedis.Tests.Infrastructure;
using Oncely.Storage.Specification;
using StackExchange.Redis;

namespace Oncely.StackExchangeRedis.Tests;

/// <summary>
/// Stored answers encrypted at rest on a real standalone Redis. "At rest" is every key under the test's prefix, read with a
/// raw client by its type (strings, every hash field and value, lists, sets, sorted sets, streams).
/// </summary>
[Collection(StandaloneSpecificationCollection.Name)]
public sealed class RedisStoredAnswerProtectionTests(StandaloneRedisFixture fixture) : StoredAnswerProtectionSpecification, IAsyncLifetime
{
    private readonly string _prefix = StoreFactory.NewPrefix("protect");
    private readonly List<RedisIdempotencyStore> _stores = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await store.DisposeAsync();
        }
    }

    protected override async ValueTask<IIdempotencyStore> OpenStoreAsync()
    {
        var store = StoreFactory.Create(fixture.Connection, _prefix);
        _stores.Add(store);
        await store.InitializeAsync(CancellationToken.None);
        return store;
    }

    protected override async Task<IReadOnlyList<byte[]>> ReadAtRestAsync()
    {
        var held = new List<byte[]>();
        var database = fixture.Connection.GetDatabase();
        foreach (var endpoint in fixture.Connection.GetEndPoints())
        {
            var server = fixture.Connection.GetServer(endpoint);
            if (server.IsReplica)
            {
                continue;
            }

            await foreach (var key in server.KeysAsync(pattern: _prefix + "*", pageSize: 500))
            {
                held.Add(Encoding.UTF8.GetBytes(key.ToString()));
                switch (await database.KeyTypeAsync(key))
                {
                    case RedisType.String:
                        held.Add((byte[])(await database.StringGetAsync(key))!);
                        break;
                    case RedisType.Hash:
                        foreach (var entry in await database.HashGetAllAsync(key))
                        {
                            held.Add((byte[])entry.Name!);
                            held.Add((byte[])entry.Value!);
                        }

                        break;
                    case RedisType.List:
                        held.AddRange((await database.ListRangeAsync(key)).Select(v => (byte[])v!));
                        break;
                    case RedisType.Set:
                        held.AddRange((await database.SetMembersAsync(key)).Select(v => (byte[])v!));
                        break;
                    case RedisType.SortedSet:
                        held.AddRange((await database.SortedSetRangeByRankAsync(key)).Select(v => (byte[])v!));
                        break;
                    case RedisType.Stream:
                        foreach (var entry in await database.StreamRangeAsync(key))
                        {
                            foreach (var value in entry.Values)
                            {
                                held.Add((byte[])value.Name!);
                                held.Add((byte[])value.Value!);
                            }
                        }

                        break;
                }
            }
        }

        return held;
    }
}
