using Oncely.Testing;
using System.Data.Common;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Oncely.AspNetCore;

namespace Oncely.Storage.Specification;

/// <summary>
/// Transactional completion ("Atomic with the effect"), shared by every SQL store: the handler's own transaction writes
/// a business row and the record's completion (or recovery point), and both commit or neither. Derived per store against
/// a real database; time is real (short leases), so the same tests run on a server clock.
/// </summary>
/// <typeparam name="TTransaction">The driver's transaction type.</typeparam>
public abstract class TransactionalCompletionSpecification<TTransaction> : IAsyncLifetime
    where TTransaction : DbTransaction
{
    protected static readonly TimeSpan ShortLease = TimeSpan.FromMilliseconds(400);
    private const string Fingerprint = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    private IIdempotencyStore? _inner;

    /// <summary>The store under test, wrapped so the tests can count which completion paths were used.</summary>
    protected CountingStore Store { get; private set; } = null!;

    /// <summary>Creates the store (schema initialised) on the test's database; it must implement <see cref="ITransactionalIdempotencyStore"/>.</summary>
    protected abstract Task<IIdempotencyStore> CreateStoreAsync();

    /// <summary>Opens the application's own connection to the store's database.</summary>
    protected abstract Task<DbConnection> OpenConnectionAsync();

    /// <summary>Opens a connection to another database, one without the records table.</summary>
    protected abstract Task<DbConnection> OpenDatabaseWithoutRecordsAsync();

    /// <summary>Releases what <see cref="CreateStoreAsync"/> created.</summary>
    protected virtual ValueTask DisposeStoreAsync(IIdempotencyStore store) => store is IAsyncDisposable d ? d.DisposeAsync() : ValueTask.CompletedTask;

    public async Task InitializeAsync()
    {
        _inner = await CreateStoreAsync();
        Store = new CountingStore(_inner);
        await using var connection = await OpenConnectionAsync();
        await ExecuteAsync(connection, null, "CREATE TABLE IF NOT EXISTS txn_payments (idem_key TEXT NOT NULL, note TEXT NOT NULL)");
        await ExecuteAsync(connection, null, "CREATE TABLE IF NOT EXISTS txn_phases (idem_key TEXT NOT NULL, phase TEXT NOT NULL)");
    }

    public async Task DisposeAsync()
    {
        if (_inner is not null)
        {
            await DisposeStoreAsync(_inner);
        }
    }

    [Fact]
    public async Task CompleteInTransaction_Committed_ReplaysAndIsWrittenOnce()
    {
        var executor = Executor();
        var id = NewId();
        var runs = 0;

        var first = await executor.ExecuteAsync(id, Fingerprint, async (execution, ct) =>
        {
            runs++;
            return await PayInTransactionAsync(execution, commit: true);
        });
        var second = await executor.ExecuteAsync(id, Fingerprint, (_, _) => throw new InvalidOperationException("must not run again"));

        Assert.Equal(CompletionOutcome.CompletedInTransaction, first.Completion);
        Assert.Equal(IdempotencyDecisionKind.Replay, second.Kind);
        Assert.Equal(201, second.Response!.StatusCode);
        Assert.Equal(first.Response!.Body.ToArray(), second.Response.Body.ToArray());
        Assert.Equal(1, runs);
        Assert.Equal(1, await CountPaymentsAsync(id.Key));
        Assert.Equal(1, Store.TransactionalCompletions);
        Assert.Equal(0, Store.Completions);
        var record = await Store.GetAsync(id, CancellationToken.None);
        Assert.Equal(IdempotencyRecordState.Completed, record!.State);
    }

    [Fact]
    public async Task CompleteInTransaction_TransactionTypedAsDbTransaction_CompletesAndReplays()
    {
        // Regression (issue 9, item 15): the transaction exactly as BeginTransactionAsync() returns it, static type
        // DbTransaction. The store is chosen by the transaction's runtime type, not by the caller's static type.
        var executor = Executor();
        var id = NewId();
        var response = new IdempotentResponse(201, [new("Content-Type", "application/json")], Encoding.UTF8.GetBytes("{\"paid\":true}"));

        var first = await executor.ExecuteAsync(id, Fingerprint, async (execution, ct) =>
        {
            await using var connection = await OpenConnectionAsync();
            await using var transaction = await connection.BeginTransactionAsync(ct);
            await ExecuteAsync(connection, transaction, "INSERT INTO txn_phases (idem_key, phase) VALUES (@k, 'booked')", ("@k", id.Key));
            await execution.SetRecoveryPointInTransactionAsync(transaction, "booked", ct);
            await ExecuteAsync(connection, transaction, "INSERT INTO txn_payments (idem_key, note) VALUES (@k, 'paid')", ("@k", id.Key));
            await execution.CompleteInTransactionAsync(transaction, response, ct);
            await transaction.CommitAsync(ct);
            return response;
        });
        var replay = await executor.ExecuteAsync(id, Fingerprint, (_, _) => throw new InvalidOperationException("must not run again"));

        Assert.Equal(CompletionOutcome.CompletedInTransaction, first.Completion);
        Assert.Equal(IdempotencyDecisionKind.Replay, replay.Kind);
        Assert.Equal(response.Body.ToArray(), replay.Response!.Body.ToArray());
        Assert.Equal(1, await CountPaymentsAsync(id.Key));
        Assert.Equal(1, await CountPhasesAsync(id.Key));
        Assert.Equal(1, Store.TransactionalCompletions);
        Assert.Equal(0, Store.Completions);
        var record = await Store.GetAsync(id, CancellationToken.None);
        Assert.Equal(IdempotencyRecordState.Completed, record!.State);
        Assert.Equal("booked", record.RecoveryPoint);
    }

    [Fact]
    public async Task CompleteInTransaction_RolledBack_RecordStaysInProgressWithSameToken()
    {
        var executor = Executor();
        var id = NewId();
        var decision = await executor.BeginAsync(id, Fingerprint);
        var execution = decision.Execution!;

        await PayInTransactionAsync(execution, commit: false);

        var record = await Store.GetAsync(id, CancellationToken.None);
        Assert.Equal(IdempotencyRecordState.InProgress, record!.State);
        Assert.Equal(execution.FencingToken, record.FencingToken);
        Assert.Null(record.Response);
        Assert.Equal(0, await CountPaymentsAsync(id.Key));

        // The failed attempt gives the record up; the retry executes exactly once.
        await execution.ReleaseAsync();
        var retry = await executor.ExecuteAsync(id, Fingerprint, async (e, ct) => await PayInTransactionAsync(e, commit: true));
        Assert.Equal(IdempotencyDecisionKind.Execute, retry.Kind);
        Assert.Equal(1, await CountPaymentsAsync(id.Key));
        Assert.Equal(IdempotencyRecordState.Completed, (await Store.GetAsync(id, CancellationToken.None))!.State);
    }

    [Fact]
    public Task CompleteInTransaction_StaleTokenAfterTakeOver_ThrowsLeaseLostAndBusinessWriteRollsBack()
        => StaleTokenAfterTakeOver_ThrowsLeaseLostAndCommitsNothingAsync(execution => PayInTransactionAsync(execution, commit: true));

    // An attempt whose lease was taken over pays: it gets the lease-lost exception, its business row is not committed,
    // the record stays the current holder's, who then completes normally.
    private async Task StaleTokenAfterTakeOver_ThrowsLeaseLostAndCommitsNothingAsync(Func<IdempotencyExecution, Task> pay)
    {
        var executor = Executor(ShortLease);
        var id = NewId();
        var stale = (await executor.BeginAsync(id, Fingerprint)).Execution!;
        await Task.Delay(ShortLease * 2);
        var current = (await executor.BeginAsync(id, Fingerprint)).Execution!;
        Assert.True(current.IsTakeOver);

        await Assert.ThrowsAsync<IdempotencyLeaseLostException>(() => pay(stale));

        Assert.Equal(0, await CountPaymentsAsync(id.Key));
        Assert.False(stale.CompletedInTransaction);
        var record = await Store.GetAsync(id, CancellationToken.None);
        Assert.Equal(IdempotencyRecordState.InProgress, record!.State);
        Assert.Equal(current.FencingToken, record.FencingToken);

        await pay(current);
        Assert.Equal(1, await CountPaymentsAsync(id.Key));
        Assert.Equal(IdempotencyRecordState.Completed, (await Store.GetAsync(id, CancellationToken.None))!.State);
    }

    [Fact]
    public async Task CompleteAndCommit_WritesTheAnswerAndTheBusinessRowInOneCommit_ThenReplays()
    {
        var executor = Executor();
        var id = NewId();
        var runs = 0;

        var first = await executor.ExecuteAsync(id, Fingerprint, async (execution, ct) =>
        {
            runs++;
            return await PayAndCommitTogetherAsync(execution);
        });
        var second = await executor.ExecuteAsync(id, Fingerprint, (_, _) => throw new InvalidOperationException("must not run again"));

        Assert.Equal(CompletionOutcome.CompletedInTransaction, first.Completion);
        Assert.Equal(IdempotencyDecisionKind.Replay, second.Kind);
        Assert.Equal(first.Response!.Body.ToArray(), second.Response!.Body.ToArray());
        Assert.Equal(1, runs);
        Assert.Equal(1, await CountPaymentsAsync(id.Key)); // committed: another connection sees the business row
        Assert.Equal(1, Store.TransactionalCompletions);
        Assert.Equal(0, Store.Completions);
        Assert.Equal(IdempotencyRecordState.Completed, (await Store.GetAsync(id, CancellationToken.None))!.State);
    }

    [Fact]
    public Task CompleteAndCommit_StaleTokenAfterTakeOver_ThrowsLeaseLostAndCommitsNothing()
        // The completion finds the record held by another token: the commit that would go with it must not happen.
        => StaleTokenAfterTakeOver_ThrowsLeaseLostAndCommitsNothingAsync(PayAndCommitTogetherAsync);

    [Fact]
    public async Task RecoveryPointInTransaction_CommittedWithPhaseRows_TakeOverResumesThereWithSameDerivedKey()
    {
        var executor = Executor(ShortLease);
        var id = NewId();
        var first = (await executor.BeginAsync(id, Fingerprint)).Execution!;
        var firstKey = first.DeriveKey("bank/transfer");
        await using (var connection = await OpenConnectionAsync())
        await using (var transaction = (TTransaction)await connection.BeginTransactionAsync())
        {
            await ExecuteAsync(connection, transaction, "INSERT INTO txn_phases (idem_key, phase) VALUES (@k, 'funds-held')", ("@k", id.Key));
            await first.SetRecoveryPointInTransactionAsync(transaction, "funds-held");
            await transaction.CommitAsync();
        }

        Assert.Equal("funds-held", first.RecoveryPoint);

        // The first attempt dies here (no release); after its lease a retry takes over.
        await Task.Delay(ShortLease * 2);
        var second = (await executor.BeginAsync(id, Fingerprint)).Execution!;

        Assert.True(second.IsTakeOver);
        Assert.Equal("funds-held", second.ResumedFrom);
        Assert.NotEqual(first.FencingToken, second.FencingToken);
        Assert.Equal(firstKey, second.DeriveKey("bank/transfer"));
        Assert.NotEqual(firstKey, second.DeriveKey("bank/refund"));
        Assert.Equal(1, await CountPhasesAsync(id.Key));
    }

    [Fact]
    public async Task RecoveryPointInTransaction_RolledBack_IsNotRecorded()
    {
        var executor = Executor(ShortLease);
        var id = NewId();
        var first = (await executor.BeginAsync(id, Fingerprint)).Execution!;
        await using (var connection = await OpenConnectionAsync())
        await using (var transaction = (TTransaction)await connection.BeginTransactionAsync())
        {
            await ExecuteAsync(connection, transaction, "INSERT INTO txn_phases (idem_key, phase) VALUES (@k, 'funds-held')", ("@k", id.Key));
            await first.SetRecoveryPointInTransactionAsync(transaction, "funds-held");
            await transaction.RollbackAsync();
        }

        Assert.Null((await Store.GetAsync(id, CancellationToken.None))!.RecoveryPoint);
        await Task.Delay(ShortLease * 2);
        var second = (await executor.BeginAsync(id, Fingerprint)).Execution!;
        Assert.True(second.IsTakeOver);
        Assert.Null(second.ResumedFrom);
        Assert.Equal(0, await CountPhasesAsync(id.Key));
    }

    [Fact]
    public async Task SetRecoveryPointInTransaction_StaleToken_ThrowsLeaseLost()
    {
        var executor = Executor(ShortLease);
        var id = NewId();
        var stale = (await executor.BeginAsync(id, Fingerprint)).Execution!;
        await Task.Delay(ShortLease * 2);
        _ = (await executor.BeginAsync(id, Fingerprint)).Execution!;

        await using var connection = await OpenConnectionAsync();
        await using var transaction = (TTransaction)await connection.BeginTransactionAsync();
        await Assert.ThrowsAsync<IdempotencyLeaseLostException>(() => stale.SetRecoveryPointInTransactionAsync(transaction, "funds-held").AsTask());
    }

    [Fact]
    public async Task CompleteInTransaction_DatabaseWithoutRecordsTable_FailsWithClearError()
    {
        var executor = Executor();
        var id = NewId();
        var execution = (await executor.BeginAsync(id, Fingerprint)).Execution!;
        await using var connection = await OpenDatabaseWithoutRecordsAsync();
        await using var transaction = (TTransaction)await connection.BeginTransactionAsync();

        var error = await Assert.ThrowsAsync<InvalidOperationException>(
            () => execution.CompleteInTransactionAsync(transaction, new IdempotentResponse(201, [], Encoding.UTF8.GetBytes("{}"))).AsTask());

        Assert.Contains("same database", error.Message, StringComparison.Ordinal);
        Assert.False(execution.CompletedInTransaction);
    }

    [Fact]
    public async Task Http_HandlerCompletesInItsTransaction_ReplaysWithoutSecondWriteOrRun()
    {
        await using var app = await StartAppAsync();
        var key = Guid.NewGuid().ToString();

        using var first = await app.PostAsync(key);
        using var second = await app.PostAsync(key);

        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(HttpStatusCode.Created, second.StatusCode);
        Assert.Equal(await first.Content.ReadAsStringAsync(), await second.Content.ReadAsStringAsync());
        Assert.Equal(first.Headers.Location, second.Headers.Location);
        Assert.False(first.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal("true", second.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(1, app.HandlerRuns);
        Assert.Equal(1, await CountPaymentsAsync(key));
        Assert.Equal(1, Store.TransactionalCompletions);
        Assert.Equal(0, Store.Completions);
    }

    [Theory]
    [InlineData("throw")]
    [InlineData("answer500")]
    public async Task Http_TransactionRolledBack_MiddlewareReleasesAndRetryExecutesOnce(string failure)
    {
        await using var app = await StartAppAsync();
        var key = Guid.NewGuid().ToString();

        using var failed = await app.PostAsync(key, failure);
        Assert.Equal(HttpStatusCode.InternalServerError, failed.StatusCode);
        Assert.Equal(0, await CountPaymentsAsync(key));
        Assert.Null(await Store.GetAsync(app.IdFor(key), CancellationToken.None));

        using var retry = await app.PostAsync(key);
        using var replay = await app.PostAsync(key);

        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.Equal(HttpStatusCode.Created, replay.StatusCode);
        Assert.Equal(await retry.Content.ReadAsStringAsync(), await replay.Content.ReadAsStringAsync());
        Assert.Equal(2, app.HandlerRuns);
        Assert.Equal(1, await CountPaymentsAsync(key));
        Assert.Equal(0, Store.Completions);
    }

    protected static IdempotencyRecordId NewId() => new("tenant-a", "POST /payments", Guid.NewGuid().ToString());

    // A short lease stands for a worker that stopped renewing it (crashed, paused, cut off from the store): renewal is
    // off, so the lease runs out while the test still holds the stale execution.
    private IdempotencyExecutor Executor(TimeSpan? lease = null)
        => new(Store, new IdempotencyEngineOptions { Lease = lease ?? TimeSpan.FromSeconds(30), RenewLease = lease is null });

    private async Task<IdempotentResponse> PayInTransactionAsync(IdempotencyExecution execution, bool commit)
    {
        await using var connection = await OpenConnectionAsync();
        await using var transaction = (TTransaction)await connection.BeginTransactionAsync();
        await ExecuteAsync(connection, transaction, "INSERT INTO txn_payments (idem_key, note) VALUES (@k, 'paid')", ("@k", execution.Id.Key));
        var response = new IdempotentResponse(201, [new("Content-Type", "application/json")], Encoding.UTF8.GetBytes($$"""{"key":"{{execution.Id.Key}}","token":{{execution.FencingToken}}}"""));
        await execution.CompleteInTransactionAsync(transaction, response);
        if (commit)
        {
            await transaction.CommitAsync();
        }
        else
        {
            await transaction.RollbackAsync();
        }

        return response;
    }

    // The business write, then the completion and the commit in one call (no CommitAsync of the caller's own).
    private async Task<IdempotentResponse> PayAndCommitTogetherAsync(IdempotencyExecution execution)
    {
        await using var connection = await OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await ExecuteAsync(connection, transaction, "INSERT INTO txn_payments (idem_key, note) VALUES (@k, 'paid')", ("@k", execution.Id.Key));
        var response = new IdempotentResponse(201, [new("Content-Type", "application/json")], Encoding.UTF8.GetBytes($$"""{"key":"{{execution.Id.Key}}","token":{{execution.FencingToken}}}"""));
        await execution.CompleteAndCommitAsync(transaction, response);
        return response;
    }

    protected async Task<long> CountPaymentsAsync(string key)
    {
        await using var connection = await OpenConnectionAsync();
        return await ScalarAsync(connection, "SELECT COUNT(*) FROM txn_payments WHERE idem_key = @k", ("@k", key));
    }

    private async Task<long> CountPhasesAsync(string key)
    {
        await using var connection = await OpenConnectionAsync();
        return await ScalarAsync(connection, "SELECT COUNT(*) FROM txn_phases WHERE idem_key = @k", ("@k", key));
    }

    protected static Task ExecuteAsync(DbConnection connection, DbTransaction? transaction, string sql, params (string Name, object Value)[] parameters)
        => TestSql.ExecuteAsync(connection, transaction, sql, parameters);

    protected static Task<long> ScalarAsync(DbConnection connection, string sql, params (string Name, object Value)[] parameters)
        => TestSql.ScalarAsync(connection, sql, parameters);

    private async Task<PaymentsApp> StartAppAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        builder.Services.AddIdempotency().UseStore(_ => Store);
        var app = builder.Build();
        var payments = new PaymentsApp(app);

        // Like Kestrel: an unhandled exception becomes a 500 (TestServer would rethrow it into the test).
        app.Use(async (context, next) =>
        {
            try
            {
                await next(context);
            }
            catch (InvalidOperationException) when (!context.Response.HasStarted)
            {
                context.Response.Clear();
                context.Response.StatusCode = 500;
            }
        });
        app.UseIdempotency();
        app.MapPost("/payments", async (HttpContext context) =>
        {
            var run = Interlocked.Increment(ref payments.Runs);
            var execution = context.GetIdempotencyExecution()!;
            var fail = context.Request.Query["fail"].ToString();
            await using var connection = await OpenConnectionAsync();
            await using var transaction = (TTransaction)await connection.BeginTransactionAsync(context.RequestAborted);
            await ExecuteAsync(connection, transaction, "INSERT INTO txn_payments (idem_key, note) VALUES (@k, 'http')", ("@k", execution.Id.Key));
            var response = IdempotentResponses.Json(201, new { key = execution.Id.Key, run }, location: $"/payments/{run}");
            await execution.CompleteInTransactionAsync(transaction, response);
            switch (fail)
            {
                case "throw":
                    throw new InvalidOperationException("simulated failure before the commit");
                case "answer500":
                    await transaction.RollbackAsync();
                    return Results.StatusCode(500);
            }

            await transaction.CommitAsync();
            return response.ToResult();
        }).RequireIdempotencyKey().AllowAnonymousIdempotency();
        await app.StartAsync();
        payments.Client = app.GetTestClient();
        return payments;
    }

    private sealed class PaymentsApp(WebApplication app) : IAsyncDisposable
    {
        public int Runs;

        public HttpClient Client { get; set; } = null!;

        public int HandlerRuns => Volatile.Read(ref Runs);

        public IdempotencyRecordId IdFor(string key) => new(IdempotencyRecordId.AnonymousTenant, "POST /payments", key);

        public Task<HttpResponseMessage> PostAsync(string key, string? fail = null)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, fail is null ? "/payments" : $"/payments?fail={fail}")
            {
                Content = new StringContent(JsonSerializer.Serialize(new { amount = 100 }), Encoding.UTF8, "application/json"),
            };
            request.Headers.Add("Idempotency-Key", key);
            return Client.SendAsync(request);
        }

        public ValueTask DisposeAsync() => app.DisposeAsync();
    }

    /// <summary>Forwards to the real store and counts how completions were written.</summary>
    protected sealed class CountingStore(IIdempotencyStore inner) : IIdempotencyStore, ITransactionalIdempotencyStore
    {
        private int _completions;
        private int _transactionalCompletions;

        public int Completions => Volatile.Read(ref _completions);

        public int TransactionalCompletions => Volatile.Read(ref _transactionalCompletions);

        private ITransactionalIdempotencyStore Transactional => (ITransactionalIdempotencyStore)inner;

        public ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
            => inner.TryReserveAsync(id, fingerprint, lease, expiration, cancellationToken);

        public ValueTask<bool> TryCompleteAsync(IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _completions);
            return inner.TryCompleteAsync(id, fencingToken, response, expiration, cancellationToken);
        }

        public ValueTask<bool> TryReleaseAsync(IdempotencyRecordId id, long fencingToken, CancellationToken cancellationToken)
            => inner.TryReleaseAsync(id, fencingToken, cancellationToken);

        public ValueTask<bool> TrySetRecoveryPointAsync(IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
            => inner.TrySetRecoveryPointAsync(id, fencingToken, recoveryPoint, lease, cancellationToken);

        public ValueTask<bool> TryRenewLeaseAsync(IdempotencyRecordId id, long fencingToken, TimeSpan lease, CancellationToken cancellationToken)
            => inner.TryRenewLeaseAsync(id, fencingToken, lease, cancellationToken);

        public ValueTask<IdempotencyRecord?> GetAsync(IdempotencyRecordId id, CancellationToken cancellationToken)
            => inner.GetAsync(id, cancellationToken);

        public async ValueTask<bool> TryCompleteAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
        {
            var completed = await Transactional.TryCompleteAsync(transaction, id, fencingToken, response, expiration, cancellationToken);
            if (completed)
            {
                Interlocked.Increment(ref _transactionalCompletions);
            }

            return completed;
        }

        public async ValueTask<bool> TryCompleteAndCommitAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, IdempotentResponse response, TimeSpan expiration, CancellationToken cancellationToken)
        {
            // Forwarded, so the store's own one-round-trip version is the one under test.
            var committed = await Transactional.TryCompleteAndCommitAsync(transaction, id, fencingToken, response, expiration, cancellationToken);
            if (committed)
            {
                Interlocked.Increment(ref _transactionalCompletions);
            }

            return committed;
        }

        public ValueTask<bool> TrySetRecoveryPointAsync(DbTransaction transaction, IdempotencyRecordId id, long fencingToken, string recoveryPoint, TimeSpan lease, CancellationToken cancellationToken)
            => Transactional.TrySetRecoveryPointAsync(transaction, id, fencingToken, recoveryPoint, lease, cancellationToken);

        public ValueTask<TransactionalReservationResult> TryReserveAsync(DbTransaction transaction, IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, TimeSpan lockTimeout, CancellationToken cancellationToken)
            => Transactional.TryReserveAsync(transaction, id, fingerprint, lease, expiration, lockTimeout, cancellationToken);
    }
}
