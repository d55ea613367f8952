using Oncely.AspNetCore;
using Oncely.Storage.Specification;

namespace Oncely.StackExchangeRedis.Tests.Infrastructure;

/// <summary>
/// Starts a <see cref="ChargesApp"/> on Redis through a connection of its own (the store makes and owns it), under a
/// key prefix; its charges go to an <see cref="InProcessChargeLedger"/> the test shares between instances.
/// </summary>
public static class RedisChargesApp
{
    public static Task<ChargesApp> StartAsync(
        string name,
        string configuration,
        string keyPrefix,
        InProcessChargeLedger ledger,
        TimeSpan handlerDelay,
        Action<RedisIdempotencyStoreOptions>? configureStore = null,
        Action<IdempotencyOptions>? configureIdempotency = null)
        => ChargesApp.StartAsync(
            name,
            ledger,
            handlerDelay,
            idempotency => idempotency.UseStackExchangeRedis(o =>
            {
                o.Configuration = configuration;
                o.KeyPrefix = keyPrefix;
                configureStore?.Invoke(o);
            }),
            configureIdempotency);
}
