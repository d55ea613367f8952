using System.Text;

namespace Oncely.Storage.Specification;

/// <summary>
/// The conformance suite of <see cref="IIdempotencyStoreAdministration"/> (the operator API's store capability) and of
/// the fenced release an operator makes with the token a listing showed. Every store shipped with Oncely derives it;
/// the store must also keep the key-reuse audit (<see cref="IIdempotencyAuditStore"/>).
/// </summary>
/// <remarks>
/// Records created one after another are told apart by a short clock step (<see cref="Step"/>): stores with a fake clock
/// advance it, server-clock stores wait that long. Only the two tests about expiry and take-over let a lease or an
/// expiration run out.
/// </remarks>
public abstract class IdempotencyStoreAdministrationSpecification
{
    /// <summary>The clock step between records that must have distinct creation times (over the millisecond resolution of the stores).</summary>
    protected static readonly TimeSpan Step = TimeSpan.FromMilliseconds(5);

    private static readonly TimeSpan ShortLease = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LongLease = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan ShortExpiration = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LongExpiration = TimeSpan.FromHours(1);
    private static readonly TimeSpan PastShort = TimeSpan.FromMilliseconds(1600);

    private const string FingerprintA = "a3f1c0de4b5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
    private const string FingerprintB = "b7e2d1c0f9e8d7c6b5a4938271605f4e3d2c1b0a99887766554433221100ffee";
    private const string Pay = "POST /payments";
    private const string Refund = "POST /refunds";

    private static readonly CancellationToken None = CancellationToken.None;

    /// <summary>Creates a fresh, empty store, isolated from every other store this suite creates.</summary>
    protected abstract ValueTask<IIdempotencyStore> CreateStoreAsync();

    /// <summary>Moves the store's clock forward by at least <paramref name="by"/> (or waits that long).</summary>
    protected abstract Task AdvanceClockAsync(TimeSpan by);

    private async Task<(IIdempotencyStore Store, IIdempotencyStoreAdministration Admin)> CreateAsync()
    {
        var store = await CreateStoreAsync();
        return (store, Assert.IsAssignableFrom<IIdempotencyStoreAdministration>(store));
    }

    private static IdempotencyRecordId NewId(string tenant = "tenant-1", string operation = Pay, string? key = null)
        => new(tenant, operation, key ?? Guid.NewGuid().ToString());

    private static IdempotentResponse Created() => new(201, [new("Content-Type", "application/json")], Encoding.UTF8.GetBytes("{\"id\":1}"));

    private static async Task<IdempotencyRecord> ReserveAsync(IIdempotencyStore store, IdempotencyRecordId id, TimeSpan? lease = null, TimeSpan? expiration = null)
    {
        var result = await store.TryReserveAsync(id, FingerprintA, lease ?? LongLease, expiration ?? LongExpiration, None);
        Assert.Equal(ReservationOutcome.Acquired, result.Outcome);
        return result.Record;
    }

    private static async Task<IdempotencyRecord> CompleteAsync(IIdempotencyStore store, IdempotencyRecordId id)
    {
        var reserved = await ReserveAsync(store, id);
        Assert.True(await store.TryCompleteAsync(id, reserved.FencingToken, Created(), LongExpiration, None));
        return (await store.GetAsync(id, None))!;
    }

    private static async Task<List<IdempotencyRecordSummary>> ListAllAsync(IIdempotencyStoreAdministration admin, IdempotencyRecordQuery query)
    {
        var all = new List<IdempotencyRecordSummary>();
        var page = await admin.ListRecordsAsync(query, None);
        all.AddRange(page.Records);
        while (page.Continuation is { } continuation)
        {
            Assert.Equal(query.Limit, page.Records.Count);
            page = await admin.ListRecordsAsync(query with { Continuation = continuation }, None);
            all.AddRange(page.Records);
        }

        return all;
    }

    private static IdempotencyRecordId[] Ids(IEnumerable<IdempotencyRecordSummary> records) => [.. records.Select(r => r.Id)];

    private static void AssertSummarises(IdempotencyRecord record, IdempotencyRecordSummary summary)
    {
        Assert.Equal(record.Id, summary.Id);
        Assert.Equal(record.State, summary.State);
        Assert.Equal(record.FencingToken, summary.FencingToken);
        Assert.Equal(record.Fingerprint, summary.Fingerprint);
        Assert.Equal(record.LeaseExpiresAt, summary.LeaseExpiresAt);
        Assert.Equal(record.ExpiresAt, summary.ExpiresAt);
        Assert.Equal(record.RecoveryPoint, summary.RecoveryPoint);
        Assert.Equal(record.State == IdempotencyRecordState.Completed ? record.Response!.StatusCode : null, summary.StatusCode);
        Assert.Equal(record.Attempts, summary.Attempts);
        Assert.True(summary.CreatedAt <= summary.LeaseExpiresAt);
        Assert.True(summary.CreatedAt < summary.ExpiresAt);
    }

    [Fact]
    public async Task ListRecords_EmptyStore_ReturnsAnEmptyLastPage()
    {
        var (_, admin) = await CreateAsync();

        var page = await admin.ListRecordsAsync(new IdempotencyRecordQuery(), None);

        Assert.Empty(page.Records);
        Assert.Null(page.Continuation);
    }

    [Fact]
    public async Task ListRecords_InProgressAndCompleted_NewestFirstWithStateTokenTimesAndStatus()
    {
        var (store, admin) = await CreateAsync();
        var oldest = await CompleteAsync(store, NewId());
        await AdvanceClockAsync(Step);
        var middle = await ReserveAsync(store, NewId());
        Assert.True(await store.TrySetRecoveryPointAsync(middle.Id, middle.FencingToken, "card-authorised", LongLease, None));
        await AdvanceClockAsync(Step);
        var newest = await ReserveAsync(store, NewId(tenant: "tenant-2", operation: Refund));

        var page = await admin.ListRecordsAsync(new IdempotencyRecordQuery(), None);

        Assert.Equal([newest.Id, middle.Id, oldest.Id], Ids(page.Records));
        Assert.Null(page.Continuation);
        AssertSummarises((await store.GetAsync(newest.Id, None))!, page.Records[0]);
        AssertSummarises((await store.GetAsync(middle.Id, None))!, page.Records[1]);
        AssertSummarises((await store.GetAsync(oldest.Id, None))!, page.Records[2]);
        Assert.Equal("card-authorised", page.Records[1].RecoveryPoint);
        Assert.Equal(201, page.Records[2].StatusCode);
        Assert.Null(page.Records[0].StatusCode);
        Assert.True(page.Records[0].CreatedAt > page.Records[1].CreatedAt);
        Assert.True(page.Records[1].CreatedAt > page.Records[2].CreatedAt);
    }

    [Fact]
    public async Task ListRecords_EachFilterAndTheirCombination_OnlyMatchingRecords()
    {
        var (store, admin) = await CreateAsync();
        var payA = await ReserveAsync(store, NewId("tenant-a", Pay));
        await AdvanceClockAsync(Step);
        var refundA = await CompleteAsync(store, NewId("tenant-a", Refund));
        await AdvanceClockAsync(Step);
        var payB = await CompleteAsync(store, NewId("tenant-b", Pay));
        await AdvanceClockAsync(Step);
        var refundB = await ReserveAsync(store, NewId("tenant-b", Refund));
        var listed = await admin.ListRecordsAsync(new IdempotencyRecordQuery(), None);
        var payBCreated = listed.Records.Single(r => r.Id == payB.Id).CreatedAt;

        async Task<IdempotencyRecordId[]> ListAsync(IdempotencyRecordQuery query) => Ids((await admin.ListRecordsAsync(query, None)).Records);

        Assert.Equal([refundB.Id, payB.Id, refundA.Id, payA.Id], Ids(listed.Records));
        Assert.Equal([refundA.Id, payA.Id], await ListAsync(new() { Tenant = "tenant-a" }));
        Assert.Equal([refundB.Id, payA.Id], await ListAsync(new() { State = IdempotencyRecordState.InProgress }));
        Assert.Equal([payB.Id, refundA.Id], await ListAsync(new() { State = IdempotencyRecordState.Completed }));
        Assert.Equal([payB.Id, payA.Id], await ListAsync(new() { Operation = Pay }));
        Assert.Equal([payB.Id, refundA.Id, payA.Id], await ListAsync(new() { CreatedBefore = payBCreated }));
        Assert.Equal([payA.Id], await ListAsync(new() { Operation = Pay, State = IdempotencyRecordState.InProgress }));
        Assert.Equal([refundA.Id], await ListAsync(new() { Tenant = "tenant-a", State = IdempotencyRecordState.Completed, CreatedBefore = payBCreated }));
        Assert.Empty(await ListAsync(new() { Tenant = "tenant-b", Operation = Refund, State = IdempotencyRecordState.Completed }));
        Assert.Empty(await ListAsync(new() { Tenant = "tenant-c" }));
        Assert.Empty(await ListAsync(new() { Operation = "POST /PAYMENTS" }));
    }

    [Fact]
    public async Task ListRecords_AnonymousTenant_IsItsOwnTenant()
    {
        var (store, admin) = await CreateAsync();
        var anonymous = await ReserveAsync(store, NewId(IdempotencyRecordId.AnonymousTenant));
        await AdvanceClockAsync(Step);
        var named = await ReserveAsync(store, NewId("anonymous"));

        var onlyAnonymous = await admin.ListRecordsAsync(new() { Tenant = IdempotencyRecordId.AnonymousTenant }, None);
        var onlyNamed = await admin.ListRecordsAsync(new() { Tenant = "anonymous" }, None);
        var all = await admin.ListRecordsAsync(new(), None);

        Assert.Equal([anonymous.Id], Ids(onlyAnonymous.Records));
        Assert.Equal([named.Id], Ids(onlyNamed.Records));
        Assert.Equal([named.Id, anonymous.Id], Ids(all.Records));
        Assert.Equal(string.Empty, onlyAnonymous.Records[0].Id.Tenant);
    }

    [Fact]
    public async Task ListRecords_ExpiredRecord_IsNeverListedNorFound()
    {
        var (store, admin) = await CreateAsync();
        var expiring = await ReserveAsync(store, NewId(key: "expiring"), ShortLease, ShortExpiration);
        var completedExpiring = await store.TryReserveAsync(NewId(key: "completed-expiring"), FingerprintA, ShortLease, LongExpiration, None);
        Assert.True(await store.TryCompleteAsync(completedExpiring.Record.Id, completedExpiring.Record.FencingToken, Created(), ShortExpiration, None));
        var live = await ReserveAsync(store, NewId(key: "live"));

        await AdvanceClockAsync(PastShort);

        Assert.Equal([live.Id], Ids((await admin.ListRecordsAsync(new(), None)).Records));
        Assert.Empty((await admin.ListRecordsAsync(new() { State = IdempotencyRecordState.Completed }, None)).Records);
        Assert.Empty(await admin.FindByKeyAsync(expiring.Id.Tenant, expiring.Id.Key, None));
        Assert.Empty(await admin.FindByKeyAsync(completedExpiring.Record.Id.Tenant, completedExpiring.Record.Id.Key, None));
    }

    [Fact]
    public async Task ListRecords_PagedWithContinuations_EveryRecordOnceInTheOrderOfOnePage()
    {
        var (store, admin) = await CreateAsync();
        var created = new List<IdempotencyRecordId>();
        for (var i = 0; i < 7; i++)
        {
            // Pairs share a creation instant on stores with a fake clock: ties are ordered by tenant, operation and key.
            if (i % 2 == 0)
            {
                await AdvanceClockAsync(Step);
            }

            created.Add((await ReserveAsync(store, NewId(tenant: $"tenant-{i % 3}", key: $"key-{i}"))).Id);
        }

        var onePage = await admin.ListRecordsAsync(new() { Limit = 500 }, None);
        var paged = await ListAllAsync(admin, new() { Limit = 3 });

        Assert.Equal(7, onePage.Records.Count);
        Assert.Equal(Ids(onePage.Records), Ids(paged));
        Assert.Equal(created.Select(id => id.Key).Order(), paged.Select(r => r.Id.Key).Order());
        Assert.Equal(paged.OrderByDescending(r => r.CreatedAt).Select(r => r.CreatedAt), paged.Select(r => r.CreatedAt));
    }

    [Fact]
    public async Task ListRecords_NewerRecordsAddedBetweenPages_LaterPagesNeitherRepeatNorSkip()
    {
        var (store, admin) = await CreateAsync();
        var older = new List<IdempotencyRecordId>();
        for (var i = 0; i < 5; i++)
        {
            await AdvanceClockAsync(Step);
            older.Add((await ReserveAsync(store, NewId(key: $"older-{i}"))).Id);
        }

        var first = await admin.ListRecordsAsync(new() { Limit = 2 }, None);
        await AdvanceClockAsync(Step);
        await ReserveAsync(store, NewId(key: "newer-0"));
        await ReserveAsync(store, NewId(key: "newer-1"));
        var rest = await ListAllAsync(admin, new() { Limit = 2, Continuation = first.Continuation });

        older.Reverse();
        Assert.Equal(older, Ids(first.Records).Concat(Ids(rest)));
    }

    [Fact]
    public async Task ListRecords_FiltersKeptAcrossPages_OnlyMatchingRecordsOnEveryPage()
    {
        var (store, admin) = await CreateAsync();
        for (var i = 0; i < 6; i++)
        {
            await AdvanceClockAsync(Step);
            await ReserveAsync(store, NewId(tenant: i % 2 == 0 ? "even" : "odd", key: $"key-{i}"));
        }

        var even = await ListAllAsync(admin, new() { Tenant = "even", Limit = 2 });

        Assert.Equal(["key-4", "key-2", "key-0"], even.Select(r => r.Id.Key));
        Assert.All(even, r => Assert.Equal("even", r.Id.Tenant));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(501)]
    public async Task ListRecords_LimitOutOfRange_ThrowsArgumentException(int limit)
    {
        var (_, admin) = await CreateAsync();

        await Assert.ThrowsAnyAsync<ArgumentException>(() => admin.ListRecordsAsync(new() { Limit = limit }, None).AsTask());
        await Assert.ThrowsAnyAsync<ArgumentException>(() => admin.ListAuditAsync(new() { Limit = limit }, None).AsTask());
    }

    [Theory]
    [InlineData("not a continuation")]
    [InlineData("W10")]
    [InlineData("WyJhMSIsNV0")]
    public async Task List_MalformedOrForeignContinuation_ThrowsArgumentException(string continuation)
    {
        var (store, admin) = await CreateAsync();
        await ReserveAsync(store, NewId());

        await Assert.ThrowsAnyAsync<ArgumentException>(() => admin.ListRecordsAsync(new() { Continuation = continuation }, None).AsTask());
        var recordContinuation = IdempotencyPageContinuation.ForRecord(DateTimeOffset.UnixEpoch, NewId());
        await Assert.ThrowsAnyAsync<ArgumentException>(() => admin.ListAuditAsync(new() { Continuation = recordContinuation }, None).AsTask());
    }

    [Fact]
    public async Task FindByKey_SameKeyUnderTwoOperations_BothNewestFirstAndNoOtherTenantsRecord()
    {
        var (store, admin) = await CreateAsync();
        var key = Guid.NewGuid().ToString();
        var pay = await CompleteAsync(store, NewId("tenant-a", Pay, key));
        await AdvanceClockAsync(Step);
        var refund = await ReserveAsync(store, NewId("tenant-a", Refund, key));
        await ReserveAsync(store, NewId("tenant-b", Pay, key));
        await ReserveAsync(store, NewId(IdempotencyRecordId.AnonymousTenant, Pay, key));
        await ReserveAsync(store, NewId("tenant-a", Pay, key + "-other"));

        var found = await admin.FindByKeyAsync("tenant-a", key, None);

        Assert.Equal([refund.Id, pay.Id], Ids(found));
        AssertSummarises((await store.GetAsync(pay.Id, None))!, found[1]);
        Assert.Equal([new IdempotencyRecordId(string.Empty, Pay, key)], Ids(await admin.FindByKeyAsync(string.Empty, key, None)));
        Assert.Empty(await admin.FindByKeyAsync("tenant-c", key, None));
        Assert.Empty(await admin.FindByKeyAsync("tenant-a", key.ToUpperInvariant() + "-absent", None));
    }

    [Fact]
    public async Task Release_WithTheListedToken_RemovesTheRecordSoTheKeyRunsAgain()
    {
        var (store, admin) = await CreateAsync();
        var id = NewId();
        await ReserveAsync(store, id);
        var listed = Assert.Single((await admin.ListRecordsAsync(new() { State = IdempotencyRecordState.InProgress }, None)).Records);

        Assert.True(await store.TryReleaseAsync(listed.Id, listed.FencingToken, None));

        Assert.Empty((await admin.ListRecordsAsync(new(), None)).Records);
        var again = await store.TryReserveAsync(id, FingerprintB, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.Acquired, again.Outcome);
        Assert.NotEqual(listed.FencingToken, again.Record.FencingToken);
    }

    [Fact]
    public async Task Release_WithARecoveryPoint_KeepsTheRecordWithItsLeaseEnded()
    {
        var (store, admin) = await CreateAsync();
        var record = await ReserveAsync(store, NewId());
        Assert.True(await store.TrySetRecoveryPointAsync(record.Id, record.FencingToken, "phase-1", LongLease, None));
        var listed = Assert.Single(await admin.FindByKeyAsync(record.Id.Tenant, record.Id.Key, None));

        Assert.True(await store.TryReleaseAsync(listed.Id, listed.FencingToken, None));

        var kept = Assert.Single(await admin.FindByKeyAsync(record.Id.Tenant, record.Id.Key, None));
        Assert.Equal("phase-1", kept.RecoveryPoint);
        Assert.True(kept.LeaseExpiresAt < listed.LeaseExpiresAt);
        var retry = await store.TryReserveAsync(record.Id, FingerprintA, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.TakenOver, retry.Outcome);
        Assert.Equal("phase-1", retry.Record.RecoveryPoint);
    }

    [Fact]
    public async Task Release_TokenTakenOverSinceListed_RefusedAndRecordUnchanged()
    {
        var (store, admin) = await CreateAsync();
        var record = await ReserveAsync(store, NewId(), ShortLease, LongExpiration);
        var listed = Assert.Single((await admin.ListRecordsAsync(new(), None)).Records);
        await AdvanceClockAsync(PastShort);
        var takeOver = await store.TryReserveAsync(record.Id, FingerprintA, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.TakenOver, takeOver.Outcome);

        Assert.False(await store.TryReleaseAsync(listed.Id, listed.FencingToken, None));

        var now = Assert.Single((await admin.ListRecordsAsync(new(), None)).Records);
        AssertSummarises(takeOver.Record, now);
        Assert.Equal((1, 2), (listed.Attempts, now.Attempts)); // the listing shows how many executions held the key
        Assert.Equal(2, Assert.Single(await admin.FindByKeyAsync(record.Id.Tenant, record.Id.Key, None)).Attempts);
        Assert.Equal(listed.CreatedAt, now.CreatedAt);
        Assert.NotEqual(listed.FencingToken, now.FencingToken);
    }

    [Fact]
    public async Task Release_CompletedRecordWithItsToken_RefusedAndAnswerKept()
    {
        var (store, admin) = await CreateAsync();
        var completed = await CompleteAsync(store, NewId());
        var listed = Assert.Single((await admin.ListRecordsAsync(new(), None)).Records);

        Assert.False(await store.TryReleaseAsync(listed.Id, listed.FencingToken, None));

        Assert.Equal(IdempotencyRecordState.Completed, Assert.Single((await admin.ListRecordsAsync(new(), None)).Records).State);
        Assert.Equal(201, (await store.GetAsync(completed.Id, None))!.Response!.StatusCode);
    }

    [Fact]
    public async Task ListAudit_Entries_NewestFirstFilteredAndPaged()
    {
        var (store, admin) = await CreateAsync();
        var audit = Assert.IsAssignableFrom<IIdempotencyAuditStore>(store);
        var at = DateTimeOffset.UtcNow;
        var appended = new List<KeyReuseAuditEntry>();
        for (var i = 0; i < 5; i++)
        {
            var entry = new KeyReuseAuditEntry(
                NewId(i % 2 == 0 ? "tenant-a" : "tenant-b", i < 3 ? Pay : Refund, $"key-{i % 4}"),
                FingerprintA,
                FingerprintB,
                $"{{\"amount\":{i}}}",
                at.AddSeconds(i));
            await audit.AppendAsync(entry, None);
            appended.Add(entry);
        }

        var all = await admin.ListAuditAsync(new(), None);
        var page1 = await admin.ListAuditAsync(new() { Limit = 2 }, None);
        var page2 = await admin.ListAuditAsync(new() { Limit = 2, Continuation = page1.Continuation }, None);
        var page3 = await admin.ListAuditAsync(new() { Limit = 2, Continuation = page2.Continuation }, None);

        Assert.Equal(Enumerable.Range(0, 5).Reverse().Select(i => $"{{\"amount\":{i}}}"), all.Entries.Select(e => e.Payload));
        Assert.Null(all.Continuation);
        Assert.Equal(all.Entries.Select(e => e.Payload), page1.Entries.Concat(page2.Entries).Concat(page3.Entries).Select(e => e.Payload));
        Assert.NotNull(page2.Continuation);
        Assert.Null(page3.Continuation);
        var newest = all.Entries[0];
        Assert.Equal(appended[4].Id, newest.Id);
        Assert.Equal(FingerprintA, newest.StoredFingerprint);
        Assert.Equal(FingerprintB, newest.AttemptedFingerprint);
        Assert.Equal(appended[4].OccurredAt.ToUnixTimeMilliseconds(), newest.OccurredAt.ToUnixTimeMilliseconds());

        Assert.Equal([4, 2, 0], (await admin.ListAuditAsync(new() { Tenant = "tenant-a" }, None)).Entries.Select(Amount));
        Assert.Equal([4, 3], (await admin.ListAuditAsync(new() { Operation = Refund }, None)).Entries.Select(Amount));
        Assert.Equal([4, 0], (await admin.ListAuditAsync(new() { Key = "key-0" }, None)).Entries.Select(Amount));
        Assert.Equal([2], (await admin.ListAuditAsync(new() { Tenant = "tenant-a", Operation = Pay, Key = "key-2" }, None)).Entries.Select(Amount));
        Assert.Empty((await admin.ListAuditAsync(new() { Tenant = IdempotencyRecordId.AnonymousTenant }, None)).Entries);

        static int Amount(KeyReuseAuditEntry entry) => entry.Payload[10] - '0';
    }
}
