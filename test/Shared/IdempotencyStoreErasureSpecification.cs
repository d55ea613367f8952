using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Oncely.Storage.Specification;

/// <summary>
/// The conformance suite of erasure (<see cref="IIdempotencyStoreErasure"/> through <see cref="IdempotencyEraser"/>):
/// a tenant's or a key's records and audit entries go, nothing of another tenant or key does, records in progress are
/// kept and reported, a reservation racing the erasure never loses its record, the erasure is audited without any
/// payload, and an erased key is forgotten (a retry runs again). Derived by every store's test project, on the real engine.
/// </summary>
public abstract class IdempotencyStoreErasureSpecification
{
    private const string FingerprintA = "a3f1c0de4b5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
    private const string FingerprintB = "b7e2d1c0f9e8d7c6b5a4938271605f4e3d2c1b0a99887766554433221100ffee";
    private const string Pay = "POST /payments";
    private const string Refund = "POST /refunds";
    private const string SecretPayload = "{\"amount\":999,\"card\":\"4111 1111 1111 1111\",\"name\":\"Ada Secret\"}";
    private const string SecretBody = "{\"charge\":\"ch_secret_body\"}";

    private static readonly TimeSpan LongLease = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan LongExpiration = TimeSpan.FromHours(1);
    private static readonly CancellationToken None = CancellationToken.None;

    /// <summary>Creates a fresh, empty store, isolated from every other store this suite creates.</summary>
    protected abstract ValueTask<IIdempotencyStore> CreateStoreAsync();

    /// <summary>Moves the store's clock forward by at least <paramref name="by"/> (or waits that long).</summary>
    protected abstract Task AdvanceClockAsync(TimeSpan by);

    /// <summary>The clock of the erasure's audit entry.</summary>
    protected virtual TimeProvider Clock => TimeProvider.System;

    private sealed class Harness(IIdempotencyStore store, IdempotencyEraser eraser, CapturingLogger log)
    {
        public IIdempotencyStore Store { get; } = store;

        public IdempotencyEraser Eraser { get; } = eraser;

        public IIdempotencyStoreAdministration Admin => Assert.IsAssignableFrom<IIdempotencyStoreAdministration>(Store);

        public IIdempotencyAuditStore Audit => Assert.IsAssignableFrom<IIdempotencyAuditStore>(Store);

        public CapturingLogger Log { get; } = log;
    }

    private async Task<Harness> CreateAsync()
    {
        var store = await CreateStoreAsync();
        Assert.IsAssignableFrom<IIdempotencyStoreErasure>(store);
        var log = new CapturingLogger();
        return new Harness(store, new IdempotencyEraser(store, Clock, log), log);
    }

    private static IdempotencyRecordId NewId(string tenant, string operation = Pay, string? key = null) => new(tenant, operation, key ?? Guid.NewGuid().ToString());

    // Letters only: a tenant id is logged, and a random hex id sometimes holds 13 to 19 digits in a row that pass the
    // Luhn check, which the log rightly masks as a card number; a test that looks for the tenant in the log must not
    // depend on that chance.
    private static string NewTenant(string name) => $"{name}-{string.Concat(Guid.NewGuid().ToString("N").Select(c => (char)(char.IsAsciiDigit(c) ? 'g' + (c - '0') : c)))}";

    private static async Task<long> CompleteAsync(IIdempotencyStore store, IdempotencyRecordId id)
    {
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.Acquired, reserved.Outcome);
        Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, new IdempotentResponse(201, [new("Content-Type", "application/json")], Encoding.UTF8.GetBytes(SecretBody)), LongExpiration, None));
        return reserved.Record.FencingToken;
    }

    private static async Task<ReservationResult> ReserveAsync(IIdempotencyStore store, IdempotencyRecordId id, TimeSpan? lease = null)
    {
        var reserved = await store.TryReserveAsync(id, FingerprintA, lease ?? LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.Acquired, reserved.Outcome);
        return reserved;
    }

    private static ValueTask AuditReuseAsync(Harness h, IdempotencyRecordId id)
        => h.Audit.AppendAsync(new KeyReuseAuditEntry(id, FingerprintA, FingerprintB, SecretPayload, DateTimeOffset.UtcNow), None);

    private static async Task<List<KeyReuseAuditEntry>> AuditOfAsync(Harness h, string tenant, string? key = null)
        => [.. (await h.Admin.ListAuditAsync(new KeyReuseAuditQuery { Tenant = tenant, Key = key, Limit = 500 }, None)).Entries];

    [Fact]
    public async Task EraseTenant_CompletedRecordsAndAuditEntries_AllGoneAndNothingOfAnotherTenant()
    {
        var h = await CreateAsync();
        var tenant = NewTenant("erase");
        var other = NewTenant("other");
        var pay = NewId(tenant);
        var refund = NewId(tenant, Refund);
        var kept = NewId(other, Pay, pay.Key);
        await CompleteAsync(h.Store, pay);
        await CompleteAsync(h.Store, refund);
        await CompleteAsync(h.Store, kept);
        await AuditReuseAsync(h, pay);
        await AuditReuseAsync(h, kept);

        var result = await h.Eraser.EraseTenantAsync(tenant, "alice", None);

        Assert.Equal(2, result.RecordsErased);
        Assert.Equal(1, result.AuditEntriesErased);
        Assert.Empty(result.InProgress);
        Assert.True(result.IsComplete);
        Assert.Null(await h.Store.GetAsync(pay, None));
        Assert.Null(await h.Store.GetAsync(refund, None));
        Assert.Empty((await h.Admin.ListRecordsAsync(new IdempotencyRecordQuery { Tenant = tenant }, None)).Records);
        Assert.Empty(await h.Admin.FindByKeyAsync(tenant, pay.Key, None));
        var survivor = await h.Store.GetAsync(kept, None);
        Assert.NotNull(survivor);
        Assert.Equal(IdempotencyRecordState.Completed, survivor.State);
        Assert.Equal(SecretBody, Encoding.UTF8.GetString(survivor.Response!.Body.Span));
        Assert.Equal(FingerprintB, Assert.Single(await AuditOfAsync(h, other)).AttemptedFingerprint);
        var left = Assert.Single(await AuditOfAsync(h, tenant));
        Assert.Equal(IdempotencyEraser.AuditOperation, left.Id.Operation);
    }

    [Fact]
    public async Task EraseKey_ThatKeyUnderEveryOperation_OtherKeysAndTenantsKept()
    {
        var h = await CreateAsync();
        var tenant = NewTenant("erase-key");
        var pay = NewId(tenant);
        var refund = NewId(tenant, Refund, pay.Key);
        var otherKey = NewId(tenant);
        var otherTenant = NewId(NewTenant("other"), Pay, pay.Key);
        foreach (var id in new[] { pay, refund, otherKey, otherTenant })
        {
            await CompleteAsync(h.Store, id);
        }

        await AuditReuseAsync(h, pay);
        await AuditReuseAsync(h, otherKey);

        var result = await h.Eraser.EraseKeyAsync(tenant, pay.Key, "alice", None);

        Assert.Equal(2, result.RecordsErased);
        Assert.Equal(1, result.AuditEntriesErased);
        Assert.Empty(result.InProgress);
        Assert.Null(await h.Store.GetAsync(pay, None));
        Assert.Null(await h.Store.GetAsync(refund, None));
        Assert.NotNull(await h.Store.GetAsync(otherKey, None));
        Assert.NotNull(await h.Store.GetAsync(otherTenant, None));
        Assert.Equal(otherKey.Key, Assert.Single(await AuditOfAsync(h, tenant), e => e.Id.Operation != IdempotencyEraser.AuditOperation).Id.Key);
    }

    [Fact]
    public async Task EraseTenant_RecordsInProgress_KeptReportedAndStillCompletableByTheirHolder()
    {
        var h = await CreateAsync();
        var tenant = NewTenant("running");
        var done = NewId(tenant);
        var running = NewId(tenant);
        var lapsed = NewId(tenant, Refund);
        await CompleteAsync(h.Store, done);
        var holder = await ReserveAsync(h.Store, running);
        var lapsedHolder = await ReserveAsync(h.Store, lapsed, TimeSpan.FromSeconds(1));
        await AdvanceClockAsync(TimeSpan.FromMilliseconds(1600));

        var first = await h.Eraser.EraseTenantAsync(tenant, "alice", None);

        Assert.Equal(1, first.RecordsErased);
        Assert.False(first.IsComplete);
        Assert.Equal([running, lapsed], first.InProgress.Select(r => r.Id).OrderBy(id => id.Operation, StringComparer.Ordinal));
        var reported = Assert.Single(first.InProgress, r => r.Id == running);
        Assert.Equal(IdempotencyRecordState.InProgress, reported.State);
        Assert.Equal(holder.Record.FencingToken, reported.FencingToken);
        Assert.Null(reported.StatusCode);
        Assert.NotNull(await h.Store.GetAsync(lapsed, None));

        // The running handler is unaffected: it completes with its token, and a duplicate is still answered from the record.
        Assert.True(await h.Store.TryCompleteAsync(running, holder.Record.FencingToken, new IdempotentResponse(201, [], Encoding.UTF8.GetBytes("{}")), LongExpiration, None));
        Assert.Equal(ReservationOutcome.Completed, (await h.Store.TryReserveAsync(running, FingerprintA, LongLease, LongExpiration, None)).Outcome);
        Assert.True(await h.Store.TryReleaseAsync(lapsed, lapsedHolder.Record.FencingToken, None));

        var second = await h.Eraser.EraseTenantAsync(tenant, "alice", None);

        Assert.Equal(1, second.RecordsErased);
        Assert.True(second.IsComplete);
        Assert.Null(await h.Store.GetAsync(running, None));
    }

    [Fact]
    public async Task EraseTenant_RacingReservationsAndCompletions_NeverErasesARecordItsHolderStillRuns()
    {
        var h = await CreateAsync();
        var tenant = NewTenant("race");
        var stop = new CancellationTokenSource();
        var erasures = 0;
        var eraser = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var result = await h.Eraser.EraseTenantAsync(tenant, "race", None);
                Assert.All(result.InProgress, r => Assert.Equal(IdempotencyRecordState.InProgress, r.State));
                Interlocked.Increment(ref erasures);
            }
        });
        var failures = new ConcurrentBag<string>();
        var workers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            for (var i = 0; i < 25; i++)
            {
                var id = NewId(tenant, Pay, $"race-{w}-{i}");
                var reserved = await ReserveAsync(h.Store, id);
                await Task.Yield();

                // Erasure may run between the reservation and each of these steps: none of them may find the record gone.
                if (!await h.Store.TryRenewLeaseAsync(id, reserved.Record.FencingToken, LongLease, None))
                {
                    failures.Add($"{id.Key}: renewal refused");
                }

                if (!await h.Store.TryCompleteAsync(id, reserved.Record.FencingToken, new IdempotentResponse(201, [], Encoding.UTF8.GetBytes("{}")), LongExpiration, None))
                {
                    failures.Add($"{id.Key}: completion refused");
                }
            }
        })).ToArray();

        await Task.WhenAll(workers);
        stop.Cancel();
        await eraser;

        Assert.Empty(failures);
        Assert.True(erasures > 0);
        var last = await h.Eraser.EraseTenantAsync(tenant, "race", None);
        Assert.True(last.IsComplete);
        Assert.Empty((await h.Admin.ListRecordsAsync(new IdempotencyRecordQuery { Tenant = tenant, Limit = 500 }, None)).Records);
    }

    [Fact]
    public async Task Erasure_IsAuditedAndLoggedWithCountsAndOperator_NeverAPayload_AndSurvivesLaterErasures()
    {
        var h = await CreateAsync();
        var tenant = NewTenant("audited");
        var id = NewId(tenant);
        await CompleteAsync(h.Store, id);
        await AuditReuseAsync(h, id);

        await h.Eraser.EraseKeyAsync(tenant, id.Key, "alice", None);
        await h.Eraser.EraseTenantAsync(tenant, "bob", None);

        var entries = await AuditOfAsync(h, tenant);
        Assert.Equal(2, entries.Count);
        Assert.All(entries, e => Assert.Equal(IdempotencyEraser.AuditOperation, e.Id.Operation));
        var tenantErasure = entries[0];
        var keyErasure = entries[1];
        Assert.Equal(string.Empty, tenantErasure.Id.Key);
        Assert.Equal(id.Key, keyErasure.Id.Key);
        Assert.All(entries, e =>
        {
            Assert.Equal(string.Empty, e.StoredFingerprint);
            Assert.Equal(string.Empty, e.AttemptedFingerprint);
            Assert.DoesNotContain("4111", e.Payload, StringComparison.Ordinal);
            Assert.DoesNotContain("Secret", e.Payload, StringComparison.Ordinal);
            Assert.DoesNotContain("ch_secret_body", e.Payload, StringComparison.Ordinal);
        });
        using var key = JsonDocument.Parse(keyErasure.Payload);
        Assert.Equal("key", key.RootElement.GetProperty("erased").GetString());
        Assert.Equal(1, key.RootElement.GetProperty("recordsErased").GetInt32());
        Assert.Equal(1, key.RootElement.GetProperty("auditEntriesErased").GetInt32());
        Assert.Equal(0, key.RootElement.GetProperty("inProgressKept").GetInt32());
        Assert.Equal("alice", key.RootElement.GetProperty("requestedBy").GetString());
        using var whole = JsonDocument.Parse(tenantErasure.Payload);
        Assert.Equal("tenant", whole.RootElement.GetProperty("erased").GetString());
        Assert.Equal(0, whole.RootElement.GetProperty("recordsErased").GetInt32());
        Assert.Equal("bob", whole.RootElement.GetProperty("requestedBy").GetString());

        Assert.Equal(2, h.Log.Entries.Count(e => e.EventId == IdempotencyEventIds.RecordsErased && e.Level == LogLevel.Warning));
        Assert.All(h.Log.Entries, e =>
        {
            Assert.DoesNotContain("4111", e.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("Secret", e.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("ch_secret_body", e.Message, StringComparison.Ordinal);
        });
        Assert.Contains(h.Log.Entries, e => e.Message.Contains(tenant, StringComparison.Ordinal) && e.Message.Contains("alice", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ErasedKey_IsForgotten_ARetryRunsAgainEvenWithAnotherPayload()
    {
        var h = await CreateAsync();
        var tenant = NewTenant("forgotten");
        var id = NewId(tenant);
        var first = await CompleteAsync(h.Store, id);
        Assert.Equal(ReservationOutcome.FingerprintMismatch, (await h.Store.TryReserveAsync(id, FingerprintB, LongLease, LongExpiration, None)).Outcome);

        await h.Eraser.EraseKeyAsync(tenant, id.Key, "alice", None);

        var again = await h.Store.TryReserveAsync(id, FingerprintB, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.Acquired, again.Outcome);
        Assert.NotEqual(first, again.Record.FencingToken);
        Assert.Equal(FingerprintB, again.Record.Fingerprint);
    }

    [Fact]
    public async Task Erase_NothingHeldAndAnonymousScope_ZeroCountsAndOnlyThatScopeTouched()
    {
        var h = await CreateAsync();
        var named = NewId(NewTenant("named"));
        var anonymous = NewId(IdempotencyRecordId.AnonymousTenant);
        await CompleteAsync(h.Store, named);
        await CompleteAsync(h.Store, anonymous);

        var nothing = await h.Eraser.EraseTenantAsync(NewTenant("absent"), "alice", None);
        var anonymousErased = await h.Eraser.EraseKeyAsync(IdempotencyRecordId.AnonymousTenant, anonymous.Key, "alice", None);

        Assert.True(nothing.FoundNothing);
        Assert.Equal(1, anonymousErased.RecordsErased);
        Assert.Null(await h.Store.GetAsync(anonymous, None));
        Assert.NotNull(await h.Store.GetAsync(named, None));
    }

    /// <summary>Keeps every log line, formatted, with its event id and level.</summary>
    private sealed class CapturingLogger : ILogger<IdempotencyEraser>
    {
        public ConcurrentQueue<(int EventId, LogLevel Level, string Message)> Entries { get; } = new();

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => Entries.Enqueue((eventId.Id, logLevel, formatter(state, exception)));
    }
}
