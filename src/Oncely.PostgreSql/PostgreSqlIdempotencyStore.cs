using System.Data.Common;
using System.Runtime.CompilerServices;
using Npgsql;

namespace Oncely.PostgreSql;

/// <summary>
/// Idempotency records in PostgreSQL, shared by every instance of an app. Each transition is one SQL statement (one
/// round trip); leases and expiry are decided by the server's clock (<c>clock_timestamp()</c>), never the app's; fencing
/// tokens come from a sequence, so they are unique over a record's whole life, across expiry and re-creation (and a
/// rolled-back reservation's token is never handed out again: <c>nextval</c> does not roll back).
/// </summary>
/// <remarks>
/// <para>
/// Where things live: the statements, their parameters and the columns of their replies are in
/// <see cref="PostgreSqlStatements"/>; object names and migrations in <see cref="PostgreSqlSchema"/>; which driver
/// failures mean "unavailable" in <see cref="PostgreSqlFailures"/>. This type decides which statement a transition runs,
/// each public operation through one shell (<see cref="RunAsync"/>: deadline, schema, run, failure mapping) and each
/// in-transaction write through <see cref="InTransactionAsync"/>.
/// </para>
/// <para>
/// Key length: the UNIQUE index on <c>(tenant, operation, idem_key)</c> is a btree, whose entries PostgreSQL caps at
/// about 2704 bytes (a third of an 8 KiB page). The store therefore accepts keys of at most
/// <see cref="MaxKeyLengthLimit"/> characters (<see cref="IIdempotencyStoreLimits"/>), which leaves more than 1600 bytes
/// for the tenant and the operation (a route pattern) together. An id that still does not fit (say, a huge tenant id)
/// fails with an <see cref="ArgumentException"/> that says so, not as an outage.
/// </para>
/// </remarks>
internal sealed partial class PostgreSqlIdempotencyStore
    : IIdempotencyStore, IIdempotencyStoreSweeper, IIdempotencyAuditStore, IIdempotencyStoreInitializer, ITransactionalIdempotencyStore, IIdempotencyStoreLimits,
      IAsyncDisposable, IDisposable
{
    /// <summary>The longest key the store accepts, in characters: see the remarks on the class.</summary>
    internal const int MaxKeyLengthLimit = 1024;

    // A reservation normally takes one statement. It is repeated only when its snapshot could not show the row it
    // conflicted with (see PostgreSqlStatements); the next statement's fresh snapshot does, so a second attempt settles it.
    private const int MaxReserveAttempts = 4;

    /// <summary>PostgreSQL's limit on one btree index entry, in bytes (for the default 8 KiB page).</summary>
    private const int BtreeEntryLimitBytes = 2704;

    private readonly NpgsqlDataSource _dataSource;
    private readonly bool _ownsDataSource;
    private readonly TimeSpan _timeout;
    private readonly string? _storeDatabase;
    private readonly PostgreSqlStatements _statements;
    private readonly SemaphoreSlim _initGate = new(1, 1);
    private volatile bool _initialized;

    /// <summary>Creates the store.</summary>
    /// <param name="dataSource">Where to connect.</param>
    /// <param name="ownsDataSource"><see langword="true"/> when the store built <paramref name="dataSource"/> and disposes it.</param>
    /// <param name="options">Validated options (schema, table, timeout).</param>
    public PostgreSqlIdempotencyStore(NpgsqlDataSource dataSource, bool ownsDataSource, PostgreSqlIdempotencyStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _dataSource = dataSource;
        _ownsDataSource = ownsDataSource;
        _storeDatabase = DatabaseOf(dataSource);
        _timeout = options.CommandTimeout;
        Schema = new PostgreSqlSchema(options.Schema, options.TableName);
        _statements = new PostgreSqlStatements(Schema, dataSource, (int)Math.Ceiling(options.CommandTimeout.TotalSeconds), options.PrepareStatements);
    }

    /// <inheritdoc />
    public int MaxKeyLength => MaxKeyLengthLimit;

    /// <summary>The store's object names.</summary>
    internal PostgreSqlSchema Schema { get; }

    /// <summary>The data source the store uses.</summary>
    internal NpgsqlDataSource DataSource => _dataSource;

    /// <inheritdoc />
    public ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fingerprint);
        return RunAsync(
            "reserve a record",
            (statements: _statements, id, fingerprint, lease, expiration),
            static async (s, ct) =>
            {
                try
                {
                    for (var attempt = 1; ; attempt++)
                    {
                        var command = s.statements.Reserve(s.id, s.fingerprint, s.lease, s.expiration);
                        if (await s.statements.ReadReservationAsync(command, s.id, s.fingerprint, ct).ConfigureAwait(false) is { } result)
                        {
                            return result;
                        }

                        if (attempt == MaxReserveAttempts)
                        {
                            throw new IdempotencyStoreUnavailableException(
                                $"The PostgreSQL idempotency store could not settle the reservation of {s.id} after {MaxReserveAttempts} attempts: the record kept changing under heavy contention.");
                        }
                    }
                }
                catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.ProgramLimitExceeded)
                {
                    throw IdTooLarge(s.id, ex);
                }
            },
            cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(response);
        return RunAsync("complete a record", _statements.Complete(id, fencingToken, response, expiration), _statements.ChangedOne, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<bool> TryReleaseAsync(IdempotencyRecordId id, long fencingToken, CancellationToken cancellationToken)
        => RunAsync("release a record", _statements.Release(id, fencingToken), _statements.ChangedAny, cancellationToken);

    /// <inheritdoc />
    public ValueTask<bool> TrySetRecoveryPointAsync(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(recoveryPoint);
        return RunAsync("set a recovery point", _statements.SetRecoveryPoint(id, fencingToken, recoveryPoint, lease), _statements.ChangedOne, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<bool> TryRenewLeaseAsync(IdempotencyRecordId id, long fencingToken, TimeSpan lease, CancellationToken cancellationToken)
        => RunAsync("renew a lease", _statements.RenewLease(id, fencingToken, lease), _statements.ChangedOne, cancellationToken);

    /// <inheritdoc />
    public ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken)
        => RunAsync("read a record", (statements: _statements, command: _statements.Get(id), id), static (s, ct) => s.statements.ReadRecordAsync(s.command, s.id, ct), cancellationToken);

    /// <inheritdoc />
    public ValueTask<int> PurgeExpiredAsync(int batchSize, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        return RunAsync("purge expired records", _statements.PurgeExpired(batchSize), _statements.Execute, cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask AppendAsync(KeyReuseAuditEntry entry, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        await RunAsync("append an audit entry", _statements.AppendAudit(entry), _statements.Execute, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>An entry's age is measured from the time the server recorded it (<c>recorded_at</c>, the server's clock).</remarks>
    public ValueTask<int> PurgeAuditAsync(TimeSpan retention, int batchSize, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(retention, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        return RunAsync("purge old audit entries", _statements.PurgeAudit(retention, batchSize), _statements.Execute, cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask InitializeAsync(CancellationToken cancellationToken)
    {
        if (_initialized)
        {
            return;
        }

        using var deadline = StartDeadline(cancellationToken);
        try
        {
            await _initGate.WaitAsync(deadline.Token).ConfigureAwait(false);
            try
            {
                if (!_initialized)
                {
                    await Schema.MigrateAsync(_dataSource, _statements.CommandTimeoutSeconds, deadline.Token).ConfigureAwait(false);
                    _initialized = true;
                }
            }
            finally
            {
                _initGate.Release();
            }
        }
        catch (Exception ex) when (PostgreSqlFailures.IsUnavailable(ex, cancellationToken))
        {
            throw Unavailable("create or upgrade its schema", ex);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        _initGate.Dispose();
        if (_ownsDataSource)
        {
            await _dataSource.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _initGate.Dispose();
        if (_ownsDataSource)
        {
            _dataSource.Dispose();
        }
    }

    /// <summary>
    /// The shell of every operation outside the application's transaction: the store's deadline
    /// (<see cref="PostgreSqlIdempotencyStoreOptions.CommandTimeout"/>) linked to the caller's token, the schema
    /// initialised, <paramref name="work"/> run, and a driver failure reported as
    /// <see cref="IdempotencyStoreUnavailableException"/> (a cancellation the caller asked for stays one).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<T> RunAsync<TState, T>(string operation, TState state, Func<TState, CancellationToken, ValueTask<T>> work, CancellationToken cancellationToken)
    {
        using var deadline = StartDeadline(cancellationToken);
        try
        {
            await EnsureInitializedAsync(deadline.Token).ConfigureAwait(false);
            return await work(state, deadline.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (PostgreSqlFailures.IsUnavailable(ex, cancellationToken))
        {
            throw Unavailable(operation, ex);
        }
    }

    /// <summary>A token that fires when the caller cancels or the store's deadline (<see cref="PostgreSqlIdempotencyStoreOptions.CommandTimeout"/>) passes.</summary>
    private CancellationTokenSource StartDeadline(CancellationToken cancellationToken)
    {
        var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_timeout);
        return deadline;
    }

    private ValueTask EnsureInitializedAsync(CancellationToken cancellationToken)
        => _initialized ? ValueTask.CompletedTask : InitializeAsync(cancellationToken);

    /// <summary>
    /// Wraps a failure as <see cref="IdempotencyStoreUnavailableException"/>. After a connection-level failure the pool's
    /// idle connections are dropped too: after a server restart or failover they are all dead, and without this each
    /// would fail one more call before the pool noticed.
    /// </summary>
    private IdempotencyStoreUnavailableException Unavailable(string operation, Exception exception)
    {
        if (exception is (NpgsqlException and not PostgresException) or System.Net.Sockets.SocketException or IOException)
        {
            _dataSource.Clear();
        }

        return PostgreSqlFailures.Unavailable(operation, exception);
    }

    /// <summary>
    /// The reservation's index entry did not fit (PostgreSQL's btree limit). That is a property of this id, not an
    /// outage: retrying will never succeed, so the caller gets an exception that says what is too long.
    /// </summary>
    private static ArgumentException IdTooLarge(IdempotencyRecordId id, PostgresException exception)
        => new(
            $"The idempotency record id is too large for the PostgreSQL store's unique index: tenant {System.Text.Encoding.UTF8.GetByteCount(id.Tenant)} bytes, " +
            $"operation {System.Text.Encoding.UTF8.GetByteCount(id.Operation)} bytes and key {System.Text.Encoding.UTF8.GetByteCount(id.Key)} bytes together exceed the " +
            $"about {BtreeEntryLimitBytes} bytes PostgreSQL can index. Keep MaxKeyLength at most {MaxKeyLengthLimit} and tenant ids and operation names short " +
            $"(for example, resolve the tenant to an id rather than a long claim). PostgreSQL said: {exception.MessageText}",
            nameof(id),
            exception);

    private static string? DatabaseOf(NpgsqlDataSource dataSource)
    {
        try
        {
            return new NpgsqlConnectionStringBuilder(dataSource.ConnectionString).Database;
        }
        catch (ArgumentException)
        {
            return null;
        }
    }
}
