using System.Net.Sockets;
using Npgsql;

namespace Oncely.PostgreSql;

/// <summary>Decides which driver failures mean "the store is unavailable" (fail closed, retry later).</summary>
internal static class PostgreSqlFailures
{
    /// <summary>
    /// <see langword="true"/> for connection failures, socket errors, timeouts (the command timeout or the store's own
    /// deadline), an exhausted pool, and server errors PostgreSQL marks transient (shutdown, too many connections,
    /// connection exceptions, deadlocks). A cancellation the caller asked for is not a failure of the store.
    /// </summary>
    public static bool IsUnavailable(Exception exception, CancellationToken callerToken) => exception switch
    {
        OperationCanceledException => !callerToken.IsCancellationRequested,
        PostgresException postgres => postgres.IsTransient
            || postgres.SqlState.StartsWith("08", StringComparison.Ordinal)
            || postgres.SqlState.StartsWith("57P", StringComparison.Ordinal)
            || postgres.SqlState == PostgresErrorCodes.QueryCanceled,

        // Everything else Npgsql raises itself is about the connection: refused, reset, broken, timed out, pool exhausted.
        NpgsqlException => true,
        SocketException or TimeoutException or IOException => true,
        _ => false,
    };

    public static IdempotencyStoreUnavailableException Unavailable(string operation, Exception exception)
        => new($"The PostgreSQL idempotency store could not {operation}: {exception.Message}", exception);
}
