using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Oncely.Sqlite;

/// <summary>
/// The SQLite file as the store reaches it: a fresh pooled connection per call, SQLite's write lock taken without
/// blocking a thread, and every driver failure mapped to what the store reports. Nothing here knows a statement.
/// </summary>
/// <remarks>
/// <para>
/// Waiting never blocks a thread: every write takes SQLite's write lock with <c>BEGIN IMMEDIATE</c> through the native
/// API with the connection's busy timeout at zero, so a locked database answers at once, and the wait is asynchronous
/// (a short backoff) until the lock is free or <see cref="SqliteIdempotencyStoreOptions.BusyTimeout"/> / the caller's
/// token runs out. Writers of one store instance queue on an asynchronous gate first, so they do not poll against each
/// other; the gate is only an optimisation, the SQLite lock is the guarantee.
/// </para>
/// <para>
/// The busy budget is real elapsed time (<see cref="TimeProvider.System"/>), not the store clock: a fake clock in tests
/// never moves on its own.
/// </para>
/// </remarks>
internal sealed class SqliteDatabase
{
    private const int SqliteOk = 0;
    private const int SqliteError = 1;
    private const int SqliteBusy = 5;
    private const int SqliteLocked = 6;
    private const long SynchronousNormal = 1;
    private const long SynchronousExtra = 3;
    private static readonly TimeSpan MaxLockBackoff = TimeSpan.FromMilliseconds(25);
    private static readonly TimeSpan MaxBusyBackoff = TimeSpan.FromMilliseconds(100);

    private readonly string _connectionString;
    private readonly TimeSpan _busyTimeout;
    private readonly string? _databaseFile;
    private readonly SemaphoreSlim _writeGate = new(1, 1);

    // Whether the database file is in WAL mode (it stays so once set): 0 not known yet, 1 yes, 2 no.
    private int _walMode;

    /// <summary>Describes the database; opens nothing.</summary>
    /// <param name="connectionString">A validated Microsoft.Data.Sqlite connection string.</param>
    /// <param name="busyTimeout">How long a call may wait for another connection's write lock in all.</param>
    public SqliteDatabase(string connectionString, TimeSpan busyTimeout)
    {
        _connectionString = connectionString;
        _busyTimeout = busyTimeout;
        var parsed = new SqliteConnectionStringBuilder(connectionString);
        DataSource = parsed.DataSource;
        _databaseFile = parsed.Mode == SqliteOpenMode.Memory || DataSource.StartsWith("file:", StringComparison.OrdinalIgnoreCase) ? null : Path.GetFullPath(DataSource);
    }

    /// <summary>The connection string's data source, for messages.</summary>
    public string DataSource { get; }

    /// <summary>
    /// Runs <paramref name="work"/> on a fresh pooled connection, outside any transaction the store starts (an
    /// autocommit read, or the migration's own transaction). While the database is locked (SQLITE_BUSY /
    /// SQLITE_LOCKED) the work is retried with short backoff until the busy timeout has passed; a locked statement
    /// changed nothing, so a retry can never execute anything twice. Every other SQLite or I/O failure becomes
    /// <see cref="IdempotencyStoreUnavailableException"/>.
    /// </summary>
    public ValueTask<T> RunAsync<TState, T>(TState state, Func<SqliteConnection, TState, CancellationToken, ValueTask<T>> work, CancellationToken cancellationToken)
        => RunAsync(state, work, TimeProvider.System.GetTimestamp(), cancellationToken);

    /// <summary>
    /// Runs <paramref name="work"/> as one write transaction: in the store's write queue, under SQLite's write lock
    /// (<c>BEGIN IMMEDIATE</c>), committed at the end (one commit, one WAL sync) or rolled back on any failure. The
    /// whole wait, in the queue and for the lock, is asynchronous and bounded by the busy timeout and
    /// <paramref name="cancellationToken"/>.
    /// </summary>
    /// <param name="state">What <paramref name="work"/> needs.</param>
    /// <param name="work">The transaction's statements.</param>
    /// <param name="cancellationToken">Cancels the wait and the work.</param>
    /// <param name="syncNormal">
    /// Commit with <c>synchronous = NORMAL</c> (WAL mode only; the connection's own level is put back right after):
    /// the commit survives a crash of the process, and is flushed to the disk with the next durable commit or
    /// checkpoint; only a power loss or an OS crash before then can lose it. Used for the two-commit reservation only
    /// (see docs/concurrency-and-leases.md, "Durable where it matters"); completions, recovery points and releases keep
    /// the connection's level.
    /// </param>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<T> WriteAsync<TState, T>(TState state, Func<SqliteConnection, TState, CancellationToken, ValueTask<T>> work, CancellationToken cancellationToken, bool syncNormal = false)
    {
        var started = TimeProvider.System.GetTimestamp();
        if (!await _writeGate.WaitAsync(_busyTimeout, cancellationToken).ConfigureAwait(false))
        {
            throw LockedTooLong(null);
        }

        try
        {
            return await RunAsync(
                (database: this, state, work, started, syncNormal),
                static (connection, s, ct) => s.database.InWriteTransactionAsync(connection, s.state, s.work, s.started, s.syncNormal, ct),
                started,
                cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<T> InWriteTransactionAsync<TState, T>(SqliteConnection connection, TState state, Func<SqliteConnection, TState, CancellationToken, ValueTask<T>> work, long started, bool syncNormal, CancellationToken cancellationToken)
    {
        var handle = connection.Handle!;
        var restoreSynchronous = syncNormal ? RelaxSynchronous(connection) : null;
        try
        {
            await BeginImmediateAsync(handle, started, cancellationToken).ConfigureAwait(false);
            try
            {
                var result = await work(connection, state, cancellationToken).ConfigureAwait(false);
                SqliteException.ThrowExceptionForRC(raw.sqlite3_exec(handle, "COMMIT"), handle);
                return result;
            }
            finally
            {
                // Anything short of a successful COMMIT leaves nothing behind, and no open transaction on the pooled handle.
                if (raw.sqlite3_get_autocommit(handle) == 0)
                {
                    _ = raw.sqlite3_exec(handle, "ROLLBACK");
                }
            }
        }
        finally
        {
            // The pooled handle goes back with the level it came with: the application may share the pool.
            if (restoreSynchronous is { } level)
            {
                SqliteException.ThrowExceptionForRC(raw.sqlite3_exec(handle, level), handle);
            }
        }
    }

    /// <summary>
    /// In WAL mode, lowers the connection's <c>synchronous</c> level to NORMAL when it is above it (FULL or EXTRA) and
    /// answers the statement that puts it back; otherwise (another journal mode, where NORMAL would risk more than a
    /// lost commit, or a level already at most NORMAL) changes nothing and answers <see langword="null"/>.
    /// </summary>
    private string? RelaxSynchronous(SqliteConnection connection)
    {
        if (Volatile.Read(ref _walMode) == 0)
        {
            using var mode = CreateCommand(connection, "PRAGMA journal_mode;");
            var wal = string.Equals(Convert.ToString(mode.ExecuteScalar(), CultureInfo.InvariantCulture), "wal", StringComparison.OrdinalIgnoreCase);
            Volatile.Write(ref _walMode, wal ? 1 : 2);
        }

        if (Volatile.Read(ref _walMode) != 1)
        {
            return null;
        }

        using var read = CreateCommand(connection, "PRAGMA synchronous;");
        var level = Convert.ToInt64(read.ExecuteScalar(), CultureInfo.InvariantCulture);
        if (level <= SynchronousNormal)
        {
            return null;
        }

        SqliteException.ThrowExceptionForRC(raw.sqlite3_exec(connection.Handle, "PRAGMA synchronous = NORMAL"), connection.Handle);
        return level == SynchronousExtra ? "PRAGMA synchronous = EXTRA" : "PRAGMA synchronous = FULL";
    }

    /// <summary>A command for <paramref name="sql"/> on <paramref name="connection"/>, in <paramref name="transaction"/> when given.</summary>
    public static SqliteCommand CreateCommand(SqliteConnection connection, string sql, SqliteTransaction? transaction = null)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;

        // Microsoft.Data.Sqlite adds its own busy loop bounded by CommandTimeout (whole seconds; 0 would mean forever).
        // The wait that matters is SQLite's busy_timeout plus the bounded retry in RunAsync, so keep this one short.
        command.CommandTimeout = 1;
        return command;
    }

    /// <summary><see langword="true"/> for SQLITE_BUSY and SQLITE_LOCKED (extended codes included): another connection held the database.</summary>
    public static bool IsBusy(SqliteException exception)
        => (exception.SqliteErrorCode & 0xFF) is SqliteBusy or SqliteLocked;

    /// <summary><see langword="true"/> when a statement named a table the connection's database does not have.</summary>
    public static bool IsMissingTable(SqliteException exception)
        => (exception.SqliteErrorCode & 0xFF) == SqliteError && exception.Message.Contains("no such table", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// <see langword="false"/> only when <paramref name="connection"/> is provably on another database file than this one
    /// (an in-memory database or a URI has no file name to compare, and counts as the same).
    /// </summary>
    public bool IsSameDatabase(SqliteConnection connection)
    {
        var other = connection.DataSource;
        if (_databaseFile is null || string.IsNullOrEmpty(other))
        {
            return true;
        }

        try
        {
            return string.Equals(Path.GetFullPath(other), _databaseFile, OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            return true;
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<T> RunAsync<TState, T>(TState state, Func<SqliteConnection, TState, CancellationToken, ValueTask<T>> work, long started, CancellationToken cancellationToken)
    {
        var backoff = TimeSpan.FromMilliseconds(5);
        while (true)
        {
            try
            {
                var connection = new SqliteConnection(_connectionString);
                await using (connection.ConfigureAwait(false))
                {
                    await connection.OpenAsync(cancellationToken).ConfigureAwait(false);

                    // No statement, just the native setting: a locked database answers SQLITE_BUSY at once and the
                    // store waits asynchronously (BeginImmediateAsync, the retry below) instead of sleeping on a thread.
                    // Set on every open, because the pooled handle may come from a connection that changed it.
                    raw.sqlite3_busy_timeout(connection.Handle, 0);

                    return await work(connection, state, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (SqliteException e) when (IsBusy(e))
            {
                var remaining = _busyTimeout - TimeProvider.System.GetElapsedTime(started);
                if (remaining <= TimeSpan.Zero)
                {
                    throw LockedTooLong(e);
                }

                await Task.Delay(backoff < remaining ? backoff : remaining, cancellationToken).ConfigureAwait(false);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBusyBackoff.Ticks));
            }
            catch (SqliteException e)
            {
                throw new IdempotencyStoreUnavailableException($"The SQLite idempotency store '{DataSource}' failed: {e.Message}", e);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new IdempotencyStoreUnavailableException($"The SQLite idempotency store '{DataSource}' could not be accessed: {e.Message}", e);
            }
        }
    }

    /// <summary>Takes the write lock, waiting asynchronously while another connection holds it, until the busy budget runs out.</summary>
    private async ValueTask BeginImmediateAsync(sqlite3 handle, long started, CancellationToken cancellationToken)
    {
        var backoff = TimeSpan.FromMilliseconds(1);
        while (true)
        {
            var rc = raw.sqlite3_exec(handle, "BEGIN IMMEDIATE");
            if (rc == SqliteOk)
            {
                return;
            }

            if ((rc & 0xFF) is not (SqliteBusy or SqliteLocked))
            {
                SqliteException.ThrowExceptionForRC(rc, handle);
            }

            var remaining = _busyTimeout - TimeProvider.System.GetElapsedTime(started);
            if (remaining <= TimeSpan.Zero)
            {
                throw LockedTooLong(null);
            }

            await Task.Delay(backoff < remaining ? backoff : remaining, cancellationToken).ConfigureAwait(false);
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxLockBackoff.Ticks));
        }
    }

    private IdempotencyStoreUnavailableException LockedTooLong(Exception? inner)
    {
        var message = string.Create(
            CultureInfo.InvariantCulture,
            $"The SQLite idempotency store '{DataSource}' stayed locked by another connection for longer than BusyTimeout ({_busyTimeout.TotalSeconds:0.###} s).");
        return inner is null ? new IdempotencyStoreUnavailableException(message) : new IdempotencyStoreUnavailableException(message, inner);
    }
}
