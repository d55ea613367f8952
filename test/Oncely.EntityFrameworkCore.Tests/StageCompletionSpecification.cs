using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Oncely.EntityFrameworkCore;

namespace Oncely.EntityFrameworkCore.Tests;

/// <summary>
/// EF Core transactional completion against a real database: the store reserves, the application's own
/// <c>SaveChangesAsync</c> writes its entity and the completion together.
/// </summary>
public abstract class StageCompletionSpecification : IAsyncLifetime
{
    private static readonly TimeSpan ShortLease = TimeSpan.FromMilliseconds(400);
    private static readonly string Fingerprint = new('c', 64);
    private ServiceProvider? _services;

    protected IIdempotencyStore Store { get; private set; } = null!;

    /// <summary>A new context on the test database.</summary>
    protected abstract ShopContext NewContext();

    /// <summary>A context on the same database whose model lacks the records.</summary>
    protected abstract UnmappedContext NewUnmappedContext();

    /// <summary>Chooses the store on the same database.</summary>
    protected abstract void UseStore(IIdempotencyBuilder builder);

    protected virtual Task PrepareDatabaseAsync() => Task.CompletedTask;

    public virtual async Task InitializeAsync()
    {
        await PrepareDatabaseAsync();
        await using (var context = NewContext())
        {
            // The business tables; the records table is excluded from EnsureCreated/migrations and left to the store.
            await context.Database.EnsureCreatedAsync();
        }

        var services = new ServiceCollection();
        UseStore(new Builder(services));
        _services = services.BuildServiceProvider();
        Store = _services.GetRequiredService<IIdempotencyStore>();
        await ((IIdempotencyStoreInitializer)Store).InitializeAsync(CancellationToken.None);
    }

    public virtual async Task DisposeAsync()
    {
        if (_services is not null)
        {
            await _services.DisposeAsync();
        }
    }

    [Fact]
    public async Task StageCompletion_SaveChanges_CommitsEntityAndCompletionTogether()
    {
        var executor = Executor();
        var id = NewId();
        var execution = (await executor.BeginAsync(id, Fingerprint)).Execution!;
        var response = Response(id.Key);

        await using (var db = NewContext())
        {
            db.Payments.Add(new Payment { IdempotencyKey = id.Key, Amount = 100 });
            await execution.StageCompletionAsync(db, response);
            Assert.True(execution.CompletedInTransaction);
            await db.SaveChangesAsync();
        }

        var record = await Store.GetAsync(id, CancellationToken.None);
        Assert.Equal(IdempotencyRecordState.Completed, record!.State);
        Assert.Equal(execution.FencingToken, record.FencingToken);
        Assert.Equal(201, record.Response!.StatusCode);
        Assert.Equal(response.Body.ToArray(), record.Response.Body.ToArray());
        Assert.Equal(response.Headers, record.Response.Headers);
        Assert.False(record.Response.BodyOmitted);
        Assert.InRange(record.ExpiresAt, DateTimeOffset.UtcNow + execution.Expiration - TimeSpan.FromMinutes(1), DateTimeOffset.UtcNow + execution.Expiration + TimeSpan.FromSeconds(1));

        var replay = await executor.BeginAsync(id, Fingerprint);
        Assert.Equal(IdempotencyDecisionKind.Replay, replay.Kind);
        Assert.Equal(response.Body.ToArray(), replay.Record!.Response!.Body.ToArray());
        Assert.Equal(1, await CountPaymentsAsync(id.Key));
    }

    [Fact]
    public async Task Erasure_OfARecordCompletedByEfCore_RecordGoneBusinessRowKept_InProgressKeptUntilSaved()
    {
        var executor = Executor();
        var eraser = new IdempotencyEraser(Store);
        var done = NewId();
        var running = NewId();
        var first = (await executor.BeginAsync(done, Fingerprint)).Execution!;
        await using (var db = NewContext())
        {
            db.Payments.Add(new Payment { IdempotencyKey = done.Key, Amount = 100 });
            await first.StageCompletionAsync(db, Response(done.Key));
            await db.SaveChangesAsync();
        }

        var second = (await executor.BeginAsync(running, Fingerprint)).Execution!;

        var erased = await eraser.EraseTenantAsync(done.Tenant, "ef-test", CancellationToken.None);

        Assert.Equal(1, erased.RecordsErased);
        Assert.Equal(running, Assert.Single(erased.InProgress).Id);
        Assert.Null(await Store.GetAsync(done, CancellationToken.None));
        Assert.Equal(1, await CountPaymentsAsync(done.Key));
        await using (var db = NewContext())
        {
            db.Payments.Add(new Payment { IdempotencyKey = running.Key, Amount = 100 });
            await second.StageCompletionAsync(db, Response(running.Key));
            await db.SaveChangesAsync();
        }

        Assert.Equal(IdempotencyRecordState.Completed, (await Store.GetAsync(running, CancellationToken.None))!.State);
        var again = await executor.BeginAsync(done, Fingerprint);
        Assert.Equal(IdempotencyDecisionKind.Execute, again.Kind);
        await again.Execution!.DisposeAsync();
    }

    [Fact]
    public async Task StageCompletion_EmptyTenant_StoredDistinctFromAnonymousTenant()
    {
        // The shared anonymous scope is the empty tenant string; the EF Core mapping must keep it as it is.
        var executor = Executor();
        var key = Guid.NewGuid().ToString();
        var anonymousScope = new IdempotencyRecordId(string.Empty, "POST /payments", key);
        var namedAnonymous = anonymousScope with { Tenant = "anonymous" };
        var other = (await executor.BeginAsync(namedAnonymous, Fingerprint)).Execution!;
        var execution = (await executor.BeginAsync(anonymousScope, Fingerprint)).Execution!;
        var response = Response(key);

        await using (var db = NewContext())
        {
            db.Payments.Add(new Payment { IdempotencyKey = key, Amount = 100 });
            await execution.StageCompletionAsync(db, response);
            await db.SaveChangesAsync();
        }

        var replay = await executor.BeginAsync(anonymousScope, Fingerprint);
        Assert.Equal(IdempotencyDecisionKind.Replay, replay.Kind);
        Assert.Equal(string.Empty, replay.Record!.Id.Tenant);
        Assert.Equal(response.Body.ToArray(), replay.Record.Response!.Body.ToArray());
        var untouched = await Store.GetAsync(namedAnonymous, CancellationToken.None);
        Assert.Equal(IdempotencyRecordState.InProgress, untouched!.State);
        Assert.Equal(other.FencingToken, untouched.FencingToken);
        await other.DisposeAsync();
    }

    [Fact]
    public async Task StageCompletion_ThroughExecuteAsync_EngineDoesNotWriteCompletionAgain()
    {
        var executor = Executor();
        var id = NewId();
        var runs = 0;

        var outcome = await executor.ExecuteAsync(id, Fingerprint, async (execution, ct) =>
        {
            runs++;
            await using var db = NewContext();
            db.Payments.Add(new Payment { IdempotencyKey = id.Key, Amount = 5 });
            var response = Response(id.Key);
            await execution.StageCompletionAsync(db, response, cancellationToken: ct);
            await db.SaveChangesAsync(ct);
            return response;
        });
        var again = await executor.ExecuteAsync(id, Fingerprint, (_, _) => throw new InvalidOperationException("must not run again"));

        Assert.Equal(CompletionOutcome.CompletedInTransaction, outcome.Completion);
        Assert.Equal(IdempotencyDecisionKind.Replay, again.Kind);
        Assert.Equal(1, runs);
        Assert.Equal(1, await CountPaymentsAsync(id.Key));
    }

    [Fact]
    public async Task StageCompletion_StaleTokenAfterTakeOver_ThrowsConcurrencyExceptionAndSavesNothing()
    {
        var executor = Executor(ShortLease);
        var id = NewId();
        var stale = (await executor.BeginAsync(id, Fingerprint)).Execution!;
        await Task.Delay(ShortLease * 2);
        var current = (await executor.BeginAsync(id, Fingerprint)).Execution!;
        Assert.True(current.IsTakeOver);

        await using (var db = NewContext())
        {
            db.Payments.Add(new Payment { IdempotencyKey = id.Key, Amount = 100 });
            await stale.StageCompletionAsync(db, Response(id.Key));
            await Assert.ThrowsAsync<DbUpdateConcurrencyException>(() => db.SaveChangesAsync());
        }

        Assert.Equal(0, await CountPaymentsAsync(id.Key));
        var record = await Store.GetAsync(id, CancellationToken.None);
        Assert.Equal(IdempotencyRecordState.InProgress, record!.State);
        Assert.Equal(current.FencingToken, record.FencingToken);
        Assert.Null(record.Response);
    }

    [Fact]
    public async Task StageCompletion_ExplicitTransactionRolledBack_RecordStaysInProgressAndRetryExecutesOnce()
    {
        var executor = Executor();
        var id = NewId();
        var execution = (await executor.BeginAsync(id, Fingerprint)).Execution!;
        await using (var db = NewContext())
        {
            await using var transaction = await db.Database.BeginTransactionAsync();
            db.Payments.Add(new Payment { IdempotencyKey = id.Key, Amount = 100 });
            await execution.StageCompletionAsync(db, Response(id.Key));
            await db.SaveChangesAsync();
            await transaction.RollbackAsync();
        }

        var record = await Store.GetAsync(id, CancellationToken.None);
        Assert.Equal(IdempotencyRecordState.InProgress, record!.State);
        Assert.Equal(execution.FencingToken, record.FencingToken);
        Assert.Equal(0, await CountPaymentsAsync(id.Key));

        await execution.ReleaseAsync();
        var retry = await executor.ExecuteAsync(id, Fingerprint, async (e, ct) =>
        {
            await using var db = NewContext();
            db.Payments.Add(new Payment { IdempotencyKey = id.Key, Amount = 100 });
            var response = Response(id.Key);
            await e.StageCompletionAsync(db, response, cancellationToken: ct);
            await db.SaveChangesAsync(ct);
            return response;
        });
        Assert.Equal(IdempotencyDecisionKind.Execute, retry.Kind);
        Assert.Equal(1, await CountPaymentsAsync(id.Key));
    }

    [Fact]
    public async Task StageCompletion_RecordAlreadyLoadedInContext_StillGuardedByThisAttemptsToken()
    {
        var executor = Executor(ShortLease);
        var id = NewId();
        var stale = (await executor.BeginAsync(id, Fingerprint)).Execution!;
        await Task.Delay(ShortLease * 2);
        _ = (await executor.BeginAsync(id, Fingerprint)).Execution!;

        await using var db = NewContext();
        var loaded = await db.Set<IdempotencyRecordEntity>().SingleAsync(e => e.Key == id.Key);
        Assert.NotEqual(stale.FencingToken, loaded.FencingToken);
        await stale.StageCompletionAsync(db, Response(id.Key));
        await Assert.ThrowsAsync<DbUpdateConcurrencyException>(() => db.SaveChangesAsync());
    }

    [Fact]
    public async Task Mapping_ReadsTheStoresRecordColumnForColumn()
    {
        var executor = Executor();
        var id = NewId();
        var execution = (await executor.BeginAsync(id, Fingerprint)).Execution!;
        await execution.SetRecoveryPointAsync("funds-held");
        var stored = (await Store.GetAsync(id, CancellationToken.None))!;

        await using var db = NewContext();
        var entity = await db.Set<IdempotencyRecordEntity>().AsNoTracking()
            .SingleAsync(e => e.Tenant == id.Tenant && e.Operation == id.Operation && e.Key == id.Key);

        Assert.Equal(Fingerprint, entity.Fingerprint);
        Assert.Equal(IdempotencyRecordState.InProgress, entity.State);
        Assert.Equal(execution.FencingToken, entity.FencingToken);
        Assert.Equal("funds-held", entity.RecoveryPoint);
        Assert.Equal(stored.LeaseExpiresAt.ToUnixTimeMilliseconds(), entity.LeaseExpiresAt.ToUnixTimeMilliseconds());
        Assert.Equal(stored.ExpiresAt.ToUnixTimeMilliseconds(), entity.ExpiresAt.ToUnixTimeMilliseconds());
        Assert.Null(entity.StatusCode);
        Assert.Equal(stored.Attempts, entity.Attempts);
    }

    // A take-over counts one more attempt in the store; EF Core reads the count and its completion keeps it.
    [Fact]
    public async Task StageCompletion_AfterTakeOver_EntityReadsTheStoresAttempts_CompletionKeepsThem()
    {
        var executor = Executor(ShortLease);
        var id = NewId();
        _ = (await executor.BeginAsync(id, Fingerprint)).Execution!;
        await Task.Delay(ShortLease * 2);
        var current = (await executor.BeginAsync(id, Fingerprint)).Execution!;
        Assert.True(current.IsTakeOver);

        await using (var db = NewContext())
        {
            var loaded = await db.Set<IdempotencyRecordEntity>().AsNoTracking().SingleAsync(e => e.Tenant == id.Tenant && e.Operation == id.Operation && e.Key == id.Key);
            Assert.Equal(2, loaded.Attempts);
        }

        await using (var db = NewContext())
        {
            db.Payments.Add(new Payment { IdempotencyKey = id.Key, Amount = 100 });
            await current.StageCompletionAsync(db, Response(id.Key));
            await db.SaveChangesAsync();
        }

        var record = await Store.GetAsync(id, CancellationToken.None);
        Assert.Equal((IdempotencyRecordState.Completed, 2), (record!.State, record.Attempts));
        var admin = Assert.IsAssignableFrom<IIdempotencyStoreAdministration>(Store);
        Assert.Equal(2, Assert.Single(await admin.FindByKeyAsync(id.Tenant, id.Key, CancellationToken.None)).Attempts);
        Assert.Equal(1, await CountPaymentsAsync(id.Key));
    }

    [Fact]
    public async Task StageCompletion_ContextWithoutApplyOncelyRecords_FailsWithClearError()
    {
        var execution = (await Executor().BeginAsync(NewId(), Fingerprint)).Execution!;
        await using var db = NewUnmappedContext();

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => execution.StageCompletionAsync(db, Response("x")).AsTask());

        Assert.Contains("ApplyOncelyRecords", error.Message, StringComparison.Ordinal);
        Assert.False(execution.CompletedInTransaction);
    }

    // The EF Core integration keeps no records of its own: it completes the store's rows, so the store's operator API
    // (IIdempotencyStoreAdministration) sees what SaveChangesAsync committed.
    [Fact]
    public async Task StageCompletion_CommittedRecord_ListedByTheStoresAdministrationAsCompleted()
    {
        var admin = Assert.IsAssignableFrom<IIdempotencyStoreAdministration>(Store);
        var id = NewId();
        var execution = (await Executor().BeginAsync(id, Fingerprint)).Execution!;
        var held = Assert.Single(await admin.FindByKeyAsync(id.Tenant, id.Key, CancellationToken.None));
        Assert.Equal(IdempotencyRecordState.InProgress, held.State);

        await using (var db = NewContext())
        {
            db.Payments.Add(new Payment { IdempotencyKey = id.Key, Amount = 100 });
            await execution.StageCompletionAsync(db, Response(id.Key));
            await db.SaveChangesAsync();
        }

        var completed = Assert.Single(await admin.FindByKeyAsync(id.Tenant, id.Key, CancellationToken.None));
        Assert.Equal(IdempotencyRecordState.Completed, completed.State);
        Assert.Equal(201, completed.StatusCode);
        Assert.Equal(execution.FencingToken, completed.FencingToken);
        Assert.Equal(held.CreatedAt, completed.CreatedAt);
        var page = await admin.ListRecordsAsync(new IdempotencyRecordQuery { Tenant = id.Tenant, State = IdempotencyRecordState.Completed, Limit = 500 }, CancellationToken.None);
        Assert.Contains(page.Records, r => r.Id == id);
    }

    // A short lease stands for a worker that stopped renewing it (crashed, paused, cut off from the store): renewal is
    // off, so the lease runs out while the test still holds the stale execution.
    private IdempotencyExecutor Executor(TimeSpan? lease = null)
        => new(Store, new IdempotencyEngineOptions { Lease = lease ?? TimeSpan.FromSeconds(30), RenewLease = lease is null });

    private static IdempotencyRecordId NewId() => new("tenant-ef", "POST /payments", Guid.NewGuid().ToString());

    private static IdempotentResponse Response(string key)
        => new(201, [new("Content-Type", "application/json; charset=utf-8"), new("Location", $"/payments/{key}")], Encoding.UTF8.GetBytes($$"""{"key":"{{key}}"}"""));

    private async Task<int> CountPaymentsAsync(string key)
    {
        await using var db = NewContext();
        return await db.Payments.CountAsync(p => p.IdempotencyKey == key);
    }

    private sealed class Builder(IServiceCollection services) : IIdempotencyBuilder
    {
        public IServiceCollection Services { get; } = services;
    }
}
