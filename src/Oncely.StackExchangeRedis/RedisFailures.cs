using System.Net.Sockets;
using StackExchange.Redis;

namespace Oncely.StackExchangeRedis;

/// <summary>Decides which failures mean "the store is unavailable" (fail closed, retry later).</summary>
internal static class RedisFailures
{
    /// <summary>
    /// <see langword="true"/> for everything StackExchange.Redis raises (no connection, a connection lost mid-call, a
    /// client-side timeout, and server errors: <c>LOADING</c>, <c>CLUSTERDOWN</c>, <c>MASTERDOWN</c>, <c>READONLY</c> on a
    /// demoted primary, <c>TRYAGAIN</c>, <c>OOM</c> under <c>maxmemory</c>, <c>BUSY</c>, …), socket errors and the store's
    /// own deadline. Each of them means the store cannot vouch for the record right now. A cancellation the caller asked
    /// for is not a failure of the store.
    /// </summary>
    public static bool IsUnavailable(Exception exception, CancellationToken callerToken) => exception switch
    {
        OperationCanceledException => !callerToken.IsCancellationRequested,
        IdempotencyStoreUnavailableException or RedisException or SocketException or TimeoutException or IOException => true,
        ObjectDisposedException => true,
        _ => false,
    };

    public static IdempotencyStoreUnavailableException Unavailable(string operation, Exception exception)
        => exception as IdempotencyStoreUnavailableException
            ?? new($"The Redis idempotency store could not {operation}: {exception.Message}", exception);
}
