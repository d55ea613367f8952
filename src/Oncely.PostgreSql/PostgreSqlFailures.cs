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

    /// <summary>
    /// <see langword="true"/> when <paramref name="exception"/> or one it wraps is Npgsql's report of a transient failure
    /// that ended the application's transaction without a commit: a lost, refused or timed-out connection (Npgsql's own
    /// exceptions over socket, I/O and timeout errors), a connection exception (class 08), the server shutting down,
    /// crashing or starting (57P01, 57P02, 57P03), too many connections (53300), a serialization failure (40001), a
    /// deadlock (40P01) or a lock wait that ran out (55P03). The first PostgreSQL error found decides: any other SQLSTATE
    /// (a constraint violation, a syntax error, a statement cancelled on the caller's request) is the operation's own.
    /// </summary>
    public static bool IsTransientTransactionFailure(Exception exception)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            switch (current)
            {
                case PostgresException postgres:
                    return postgres.SqlState.StartsWith("08", StringComparison.Ordinal)
                        || postgres.SqlState is PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown or PostgresErrorCodes.CannotConnectNow
                            or PostgresErrorCodes.TooManyConnections or PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected
                            or PostgresErrorCodes.LockNotAvailable;
                case NpgsqlException npgsql when npgsql.InnerException is not NpgsqlException:
                    // Raised by Npgsql itself, not by the server: transient when it wraps a socket, I/O or timeout error.
                    return npgsql.IsTransient;
            }
        }

        return false;
    }

    public static IdempotencyStoreUnavailableException Unavailable(string operation, Exception exception)
        => new($"The PostgreSQL idempotency store could not {operation}: {exception.Message}", exception);
}
