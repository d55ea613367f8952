using System.Runtime.CompilerServices;
using Microsoft.Data.Sqlite;

namespace Oncely.Sqlite;

/// <summary>
/// Idempotency records in a SQLite database file. Every transition is one SQL statement decided by the row's state
/// under SQLite's single-writer lock, so reservations are exclusive across threads, store instances and processes
/// that share the file on one machine.
/// </summary>
/// <remarks>
/// <para>
/// Where things live: the statements, their parameters and the columns of their replies are in
/// <see cref="SqliteStatements"/>; the connection, the write lock and its asynchronous wait, and failure mapping are in
/// <see cref="SqliteDatabase"/>; the schema and its migrations in <see cref="SqliteSchema"/>. This type decides which
/// statements a transition runs, each public operation through one shell (<see cref="ReadAsync"/> or
/// <see cref="WriteAsync"/>: check cancellation, initialise the schema, run).
/// </para>
/// <para>
/// Reads never write (decision-table row 20): a reservation first reads the key in an ordinary read transaction (WAL:
/// no lock that blocks or waits for the writer, nothing written to the file), and answers a replay, an in-progress
/// duplicate or a reused key from that read. Only a new, expired or takeable key goes on to the write lock.
/// </para>
/// <para>
/// Time: SQLite is embedded, so the machine's clock is the store's clock. <c>now</c> comes from the injected
/// <see cref="TimeProvider"/> and is stored as integer Unix milliseconds (<see cref="SqliteUnixTime"/>).
/// </para>
/// </remarks>
internal sealed partial class SqliteIdempotencyStore
    : IIdempotencyStore, IIdempotencyStoreSweeper, IIdempotencyAuditStore, IIdempotencyStoreInitializer, ITransactionalIdempotencyStore
{
    private readonly SqliteDatabase _database;
    private readonly SqliteStatements _statements;
    private readonly string _table;
    private readonly string _auditTable;
    private readonly TimeProvider _clock;
    private readonly Lock _initializationGate = new();
    private Task? _initialization;

    /// <summary>Creates the store; the schema is created on <see cref="InitializeAsync"/> or before the first operation.</summary>
    /// <param name="options">The validated options (copied).</param>
    /// <param name="timeProvider">The clock for leases and expiry; defaults to <see cref="TimeProvider.System"/>.</param>
    public SqliteIdempotencyStore(SqliteIdempotencyStoreOptions options, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options = options.Clone();
        options.Validate();
        _database = new SqliteDatabase(options.ConnectionString, options.BusyTimeout);
        _table = options.TableName;
        _auditTable = options.AuditTableName;
        _statements = new SqliteStatements(_table, _auditTable);
        _clock = timeProvider ?? TimeProvider.System;
    }

    /// <inheritdoc />
    public ValueTask InitializeAsync(CancellationToken cancellationToken) => new(EnsureInitializedAsync(cancellationToken));

    /// <inheritdoc />
    /// <remarks>
    /// A read, and a write only when the read shows the key absent, expired or takeable. The read is an ordinary
    /// autocommit SELECT: it waits for no lock and writes nothing, so replays, in-progress duplicates and reused keys
    /// cost one read (decision-table row 20) even while another connection holds the write lock. The write is the
    /// guarded upsert, under the write lock; when its guard refuses (another caller got there between the read and the
    /// lock), the row is read again under the same lock, where it cannot change, and reported as it stands.
    /// </remarks>
    public async ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fingerprint);
        var seen = await GetAsync(id, cancellationToken).ConfigureAwait(false);
        if (seen is not null && Answer(seen, fingerprint, Now()) is { } answered)
        {
            return answered;
        }

        // The reservation commits with synchronous = NORMAL (WAL): it survives a crash of the process, and a power loss
        // that loses it kills the attempt that held it too (docs/concurrency-and-leases.md, "Durable where it matters").
        return await WriteAsync((store: this, id, fingerprint, lease, expiration), static (connection, s, ct) => s.store.ReserveUnderLockAsync(connection, s.id, s.fingerprint, s.lease, s.expiration, ct), cancellationToken, syncNormal: true).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(response);
        return await FencedWriteAsync((id, fencingToken, response, expiration), static (sql, c, s, now) => sql.Complete(c, null, s.id, s.fencingToken, s.response, s.expiration, now), cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Two guarded statements whose conditions exclude each other (recovery point absent / present), so at most one of
    /// them applies and each is atomic on its own. Only the token's holder can change the recovery point, and it only
    /// ever goes from absent to present while the token holds; so if the DELETE found a recovery point, the UPDATE sees
    /// the same row unless the token was taken over in between, and then it correctly refuses.
    /// </remarks>
    public async ValueTask<bool> TryReleaseAsync(IdempotencyRecordId id, long fencingToken, CancellationToken cancellationToken)
        => await WriteAsync(
            (store: this, id, fencingToken),
            static async (connection, s, ct) =>
                await SqliteStatements.ChangedOneAsync(s.store._statements.ReleaseDelete(connection, s.id, s.fencingToken), ct).ConfigureAwait(false)
                || await SqliteStatements.ChangedOneAsync(s.store._statements.ReleaseEndLease(connection, s.id, s.fencingToken, s.store.Now()), ct).ConfigureAwait(false),
            cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public async ValueTask<bool> TrySetRecoveryPointAsync(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(recoveryPoint);
        return await FencedWriteAsync((id, fencingToken, recoveryPoint, lease), static (sql, c, s, now) => sql.SetRecoveryPoint(c, null, s.id, s.fencingToken, s.recoveryPoint, s.lease, now), cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<bool> TryRenewLeaseAsync(IdempotencyRecordId id, long fencingToken, TimeSpan lease, CancellationToken cancellationToken)
        => await FencedWriteAsync((id, fencingToken, lease), static (sql, c, s, now) => sql.RenewLease(c, s.id, s.fencingToken, s.lease, now), cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken)
        => ReadAsync(
            (store: this, id),
            static (connection, s, ct) => SqliteStatements.ReadRecordAsync(s.store._statements.ReadLive(connection, null, s.id, s.store.Now()), s.id, ct),
            cancellationToken);

    /// <inheritdoc />
    public ValueTask<int> PurgeExpiredAsync(int batchSize, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        return WriteAsync(
            (store: this, batchSize),
            static (connection, s, ct) => SqliteStatements.ExecuteAsync(s.store._statements.PurgeExpired(connection, s.batchSize, s.store.Now()), ct),
            cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask AppendAsync(KeyReuseAuditEntry entry, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        await WriteAsync(
            (store: this, entry),
            static (connection, s, ct) => SqliteStatements.ExecuteAsync(s.store._statements.AppendAudit(connection, s.entry), ct),
            cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>An entry's age is measured from its <see cref="KeyReuseAuditEntry.OccurredAt"/>, against the store's clock.</remarks>
    public ValueTask<int> PurgeAuditAsync(TimeSpan retention, int batchSize, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(retention, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        return WriteAsync(
            (store: this, retention, batchSize),
            static (connection, s, ct) => SqliteStatements.ExecuteAsync(s.store._statements.PurgeAudit(connection, s.retention, s.batchSize, s.store.Now()), ct),
            cancellationToken);
    }

    /// <summary>The guarded upsert under the write lock; when its guard refuses, the record that holds the key, read under the same lock.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ReservationResult> ReserveUnderLockAsync(SqliteConnection connection, IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
    {
        var now = Now();
        if (await SqliteStatements.ReadReservationAsync(_statements.Reserve(connection, null, id, fingerprint, lease, expiration, now), id, fingerprint, cancellationToken).ConfigureAwait(false) is { } reserved)
        {
            return reserved;
        }

        // Under the write lock nothing moves: the row the guard refused is live and not takeable at `now`.
        var existing = await SqliteStatements.ReadRecordAsync(_statements.ReadLive(connection, null, id, now), id, cancellationToken).ConfigureAwait(false);
        return existing is not null && Answer(existing, fingerprint, now) is { } answer
            ? answer
            : throw new IdempotencyStoreUnavailableException($"The SQLite idempotency store could not settle the reservation of '{id}': the guarded write and the read under the same lock disagree.");
    }

    /// <summary>What a live record answers a reservation with, or <see langword="null"/> when the caller may take it.</summary>
    private static ReservationResult? Answer(IdempotencyRecord existing, string fingerprint, long now)
    {
        if (!string.Equals(existing.Fingerprint, fingerprint, StringComparison.Ordinal))
        {
            return new ReservationResult(ReservationOutcome.FingerprintMismatch, existing);
        }

        if (existing.State == IdempotencyRecordState.Completed)
        {
            return new ReservationResult(ReservationOutcome.Completed, existing);
        }

        return existing.LeaseExpiresAt > SqliteUnixTime.ToDateTimeOffset(now) ? new ReservationResult(ReservationOutcome.InProgress, existing) : null;
    }

    /// <summary>A write of one fenced statement (built by <paramref name="statement"/> at the store clock's now); answers whether it changed the caller's record.</summary>
    private ValueTask<bool> FencedWriteAsync<TState>(TState state, Func<SqliteStatements, SqliteConnection, TState, long, SqliteCommand> statement, CancellationToken cancellationToken)
        => WriteAsync(
            (store: this, state, statement),
            static (connection, s, ct) => SqliteStatements.ChangedOneAsync(s.statement(s.store._statements, connection, s.state, s.store.Now()), ct),
            cancellationToken);

    /// <summary>The shell of every read: cancellation checked, schema initialised, <paramref name="work"/> run on its own connection.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<T> ReadAsync<TState, T>(TState state, Func<SqliteConnection, TState, CancellationToken, ValueTask<T>> work, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        return await _database.RunAsync(state, work, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The shell of every write: cancellation checked, schema initialised, <paramref name="work"/> run as one write transaction.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<T> WriteAsync<TState, T>(TState state, Func<SqliteConnection, TState, CancellationToken, ValueTask<T>> work, CancellationToken cancellationToken, bool syncNormal = false)
    {
        cancellationToken.ThrowIfCancellationRequested();
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        return await _database.WriteAsync(state, work, cancellationToken, syncNormal).ConfigureAwait(false);
    }

    private Task EnsureInitializedAsync(CancellationToken cancellationToken)
    {
        var initialization = Volatile.Read(ref _initialization);
        if (initialization is { IsCompletedSuccessfully: true })
        {
            return Task.CompletedTask;
        }

        lock (_initializationGate)
        {
            // A failed or canceled attempt is forgotten so the next call tries again (the database may be back).
            if (_initialization is null || _initialization.IsFaulted || _initialization.IsCanceled)
            {
                _initialization = _database.RunAsync(
                    this,
                    static (connection, store, ct) => SqliteSchema.MigrateAsync(connection, store._table, store._auditTable, store._database.DataSource, store.Now(), ct),
                    CancellationToken.None).AsTask();
            }

            initialization = _initialization;
        }

        return initialization.WaitAsync(cancellationToken);
    }

    private long Now() => _clock.GetUtcNow().ToUnixTimeMilliseconds();
}
