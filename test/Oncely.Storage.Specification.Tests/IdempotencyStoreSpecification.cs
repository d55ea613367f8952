using System.Text;

namespace Oncely.Storage.Specification;

/// <summary>
/// The conformance suite every <see cref="IIdempotencyStore"/> must pass. A store's test class derives from it and
/// supplies a fresh store and a way to move the store's clock forward.
/// </summary>
/// <remarks>
/// Stores with a fake clock advance it; stores that decide time on a server (PostgreSQL <c>now()</c>) simply wait,
/// so every lease and expiration that a test lets run out is about one second long. Tests never assert durations.
/// </remarks>
public abstract class IdempotencyStoreSpecification
{
    /// <summary>A lease the tests let run out.</summary>
    protected static readonly TimeSpan ShortLease = TimeSpan.FromSeconds(1);

    /// <summary>A lease that never runs out during a test.</summary>
    protected static readonly TimeSpan LongLease = TimeSpan.FromMinutes(5);

    /// <summary>An expiration the tests let run out.</summary>
    protected static readonly TimeSpan ShortExpiration = TimeSpan.FromSeconds(1);

    /// <summary>An expiration that never runs out during a test.</summary>
    protected static readonly TimeSpan LongExpiration = TimeSpan.FromHours(1);

    /// <summary>Past <see cref="ShortLease"/> and <see cref="ShortExpiration"/>, with a margin for server clocks.</summary>
    protected static readonly TimeSpan PastShort = TimeSpan.FromMilliseconds(1600);

    private const string FingerprintA = "a3f1c0de4b5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
    private const string FingerprintB = "b7e2d1c0f9e8d7c6b5a4938271605f4e3d2c1b0a99887766554433221100ffee";

    private static readonly CancellationToken None = CancellationToken.None;

    /// <summary>Creates a fresh, empty store, isolated from every other store this suite creates.</summary>
    protected abstract ValueTask<IIdempotencyStore> CreateStoreAsync();

    /// <summary>Moves the store's clock forward by at least <paramref name="by"/> (or waits that long).</summary>
    protected abstract Task AdvanceClockAsync(TimeSpan by);

    private static IdempotencyRecordId NewId(string tenant = "tenant-1", string operation = "POST /payments")
        => new(tenant, operation, Guid.NewGuid().ToString());

    private static IdempotentResponse SampleResponse() => new(
        201,
        [
            new("Content-Type", "application/json; charset=utf-8"),
            new("Location", "/payments/42"),
            new("ETag", "\"v1\""),
            new("X-Trace", "second"),
            new("X-Trace", "first"),
        ],
        Encoding.UTF8.GetBytes("{\"id\":42,\"amount\":\"100.00\",\"note\":\"é 日本 🎉\"}"));

    private static void AssertSameResponse(IdempotentResponse expected, IdempotentResponse? actual)
    {
        Assert.NotNull(actual);
        Assert.Equal(expected.StatusCode, actual.StatusCode);
        Assert.Equal(expected.Headers, actual.Headers);
        Assert.Equal(expected.Body.ToArray(), actual.Body.ToArray());
        Assert.Equal(expected.BodyOmitted, actual.BodyOmitted);
    }

    private static void AssertSameRecord(IdempotencyRecord expected, IdempotencyRecord? actual)
    {
        Assert.NotNull(actual);
        Assert.Equal(expected.Id, actual.Id);
        Assert.Equal(expected.Fingerprint, actual.Fingerprint);
        Assert.Equal(expected.State, actual.State);
        Assert.Equal(expected.FencingToken, actual.FencingToken);
        Assert.Equal(expected.RecoveryPoint, actual.RecoveryPoint);
        Assert.Equal(expected.ExpiresAt, actual.ExpiresAt);
        if (expected.Response is null)
        {
            Assert.Null(actual.Response);
        }
        else
        {
            AssertSameResponse(expected.Response, actual.Response);
        }
    }

    [Fact]
    public async Task Reserve_NewKey_Acquires()
    {
        var store = await CreateStoreAsync();
        var id = NewId();

        var result = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        Assert.Equal(ReservationOutcome.Acquired, result.Outcome);
        Assert.True(result.MustExecute);
        Assert.Equal(id, result.Record.Id);
        Assert.Equal(FingerprintA, result.Record.Fingerprint);
        Assert.Equal(IdempotencyRecordState.InProgress, result.Record.State);
        Assert.Null(result.Record.RecoveryPoint);
        Assert.Null(result.Record.Response);
        Assert.True(result.Record.LeaseExpiresAt < result.Record.ExpiresAt);
    }

    [Fact]
    public async Task Get_MissingKey_ReturnsNull()
    {
        var store = await CreateStoreAsync();

        Assert.Null(await store.GetAsync(NewId(), None));
    }

    [Fact]
    public async Task Get_AfterReserve_ReturnsTheReservedRecord()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        AssertSameRecord(reserved.Record, await store.GetAsync(id, None));
    }

    [Fact]
    public async Task Reserve_SameFingerprintWhileLeaseValid_ReturnsInProgress()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var first = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        var second = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        Assert.Equal(ReservationOutcome.InProgress, second.Outcome);
        Assert.False(second.MustExecute);
        Assert.Equal(first.Record.FencingToken, second.Record.FencingToken);
        AssertSameRecord(first.Record, await store.GetAsync(id, None));
    }

    [Fact]
    public async Task Reserve_DifferentFingerprintInProgress_ReturnsMismatchAndLeavesRecordUntouched()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var first = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        var second = await store.TryReserveAsync(id, FingerprintB, LongLease, LongExpiration, None);

        Assert.Equal(ReservationOutcome.FingerprintMismatch, second.Outcome);
        Assert.False(second.MustExecute);
        Assert.Equal(FingerprintA, second.Record.Fingerprint);
        AssertSameRecord(first.Record, await store.GetAsync(id, None));
        Assert.True(await store.TryCompleteAsync(id, first.Record.FencingToken, SampleResponse(), LongExpiration, None));
    }

    [Fact]
    public async Task Reserve_DifferentFingerprintCompleted_ReturnsMismatchAndLeavesRecordUntouched()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var first = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.True(await store.TryCompleteAsync(id, first.Record.FencingToken, SampleResponse(), LongExpiration, None));
        var completed = await store.GetAsync(id, None);

        var second = await store.TryReserveAsync(id, FingerprintB, LongLease, LongExpiration, None);

        Assert.Equal(ReservationOutcome.FingerprintMismatch, second.Outcome);
        Assert.Equal(FingerprintA, second.Record.Fingerprint);
        AssertSameRecord(completed!, await store.GetAsync(id, None));
    }

    [Fact]
    public async Task Reserve_DifferentFingerprintAfterLeaseExpired_ReturnsMismatchAndDoesNotTakeOver()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var first = await store.TryReserveAsync(id, FingerprintA, ShortLease, LongExpiration, None);
        await AdvanceClockAsync(PastShort);

        var second = await store.TryReserveAsync(id, FingerprintB, LongLease, LongExpiration, None);

        Assert.Equal(ReservationOutcome.FingerprintMismatch, second.Outcome);
        var stored = await store.GetAsync(id, None);
        Assert.NotNull(stored);
        Assert.Equal(first.Record.FencingToken, stored.FencingToken);
        Assert.Equal(FingerprintA, stored.Fingerprint);
    }

    [Fact]
    public async Task Complete_ThenReserve_ReturnsCompletedWithExactResponse()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        var response = SampleResponse();

        Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, response, LongExpiration, None));
        var replay = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        Assert.Equal(ReservationOutcome.Completed, replay.Outcome);
        Assert.False(replay.MustExecute);
        Assert.Equal(IdempotencyRecordState.Completed, replay.Record.State);
        Assert.Equal(reserved.Record.FencingToken, replay.Record.FencingToken);
        AssertSameResponse(response, replay.Record.Response);
        AssertSameResponse(response, (await store.GetAsync(id, None))?.Response);
    }

    [Fact]
    public async Task Complete_WithWrongToken_IsRefusedAndRecordUnchanged()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        Assert.False(await store.TryCompleteAsync(id, reserved.Record.FencingToken + 1, SampleResponse(), LongExpiration, None));
        Assert.False(await store.TryCompleteAsync(id, reserved.Record.FencingToken - 1, SampleResponse(), LongExpiration, None));

        AssertSameRecord(reserved.Record, await store.GetAsync(id, None));
    }

    [Fact]
    public async Task Complete_Twice_SecondIsRefusedAndFirstResponseKept()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        var first = SampleResponse();
        Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, first, LongExpiration, None));

        var other = new IdempotentResponse(500, [], new byte[] { 1, 2, 3 });
        Assert.False(await store.TryCompleteAsync(id, reserved.Record.FencingToken, other, LongExpiration, None));

        AssertSameResponse(first, (await store.GetAsync(id, None))?.Response);
    }

    [Fact]
    public async Task Complete_MissingRecord_IsRefused()
    {
        var store = await CreateStoreAsync();

        Assert.False(await store.TryCompleteAsync(NewId(), 1, SampleResponse(), LongExpiration, None));
    }

    [Fact]
    public async Task Release_WithoutRecoveryPoint_DeletesRecord()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        Assert.True(await store.TryReleaseAsync(id, reserved.Record.FencingToken, None));

        Assert.Null(await store.GetAsync(id, None));
        var again = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.Acquired, again.Outcome);
        Assert.NotEqual(reserved.Record.FencingToken, again.Record.FencingToken);
    }

    [Fact]
    public async Task Release_AfterRelease_AllowsDifferentFingerprint()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.True(await store.TryReleaseAsync(id, reserved.Record.FencingToken, None));

        var other = await store.TryReserveAsync(id, FingerprintB, LongLease, LongExpiration, None);

        Assert.Equal(ReservationOutcome.Acquired, other.Outcome);
        Assert.Equal(FingerprintB, other.Record.Fingerprint);
    }

    [Fact]
    public async Task Release_WithWrongToken_IsRefusedAndRecordUnchanged()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        Assert.False(await store.TryReleaseAsync(id, reserved.Record.FencingToken + 1, None));

        AssertSameRecord(reserved.Record, await store.GetAsync(id, None));
    }

    [Fact]
    public async Task Release_CompletedRecord_IsRefused()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, SampleResponse(), LongExpiration, None));

        Assert.False(await store.TryReleaseAsync(id, reserved.Record.FencingToken, None));

        Assert.Equal(IdempotencyRecordState.Completed, (await store.GetAsync(id, None))?.State);
    }

    [Fact]
    public async Task SetRecoveryPoint_WithValidToken_IsStored()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        Assert.True(await store.TrySetRecoveryPointAsync(id, reserved.Record.FencingToken, "charged", LongLease, None));
        Assert.True(await store.TrySetRecoveryPointAsync(id, reserved.Record.FencingToken, "ledger-written", LongLease, None));

        var stored = await store.GetAsync(id, None);
        Assert.NotNull(stored);
        Assert.Equal("ledger-written", stored.RecoveryPoint);
        Assert.Equal(reserved.Record.FencingToken, stored.FencingToken);
        Assert.Equal(IdempotencyRecordState.InProgress, stored.State);
    }

    [Fact]
    public async Task SetRecoveryPoint_WithWrongToken_IsRefused()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        Assert.False(await store.TrySetRecoveryPointAsync(id, reserved.Record.FencingToken + 1, "charged", LongLease, None));

        Assert.Null((await store.GetAsync(id, None))?.RecoveryPoint);
    }

    [Fact]
    public async Task SetRecoveryPoint_RenewsLease()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, FingerprintA, ShortLease, LongExpiration, None);

        Assert.True(await store.TrySetRecoveryPointAsync(id, reserved.Record.FencingToken, "charged", LongLease, None));
        await AdvanceClockAsync(PastShort);

        var retry = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.InProgress, retry.Outcome);
        Assert.Equal(reserved.Record.FencingToken, retry.Record.FencingToken);
    }

    [Fact]
    public async Task RenewLease_CurrentToken_ExtendsLeaseSoRetryAfterOldLeaseEndIsInProgress()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, FingerprintA, ShortLease, LongExpiration, None);

        Assert.True(await store.TryRenewLeaseAsync(id, reserved.Record.FencingToken, LongLease, None));
        await AdvanceClockAsync(PastShort);

        var retry = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.InProgress, retry.Outcome);
        Assert.False(retry.MustExecute);
        Assert.Equal(reserved.Record.FencingToken, retry.Record.FencingToken);
        Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, SampleResponse(), LongExpiration, None));
    }

    [Fact]
    public async Task RenewLease_KeepsRecoveryPointAndExpiry()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.True(await store.TrySetRecoveryPointAsync(id, reserved.Record.FencingToken, "charged", LongLease, None));
        var before = await store.GetAsync(id, None);

        Assert.True(await store.TryRenewLeaseAsync(id, reserved.Record.FencingToken, LongLease, None));

        var after = await store.GetAsync(id, None);
        Assert.NotNull(before);
        AssertSameRecord(before, after);
    }

    [Fact]
    public async Task RenewLease_StaleTokenAfterTakeOver_IsRefusedAndChangesNothing()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var stale = await store.TryReserveAsync(id, FingerprintA, ShortLease, LongExpiration, None);
        await AdvanceClockAsync(PastShort);
        var current = await store.TryReserveAsync(id, FingerprintA, ShortLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.TakenOver, current.Outcome);
        var before = await store.GetAsync(id, None);

        Assert.False(await store.TryRenewLeaseAsync(id, stale.Record.FencingToken, LongLease, None));

        var after = await store.GetAsync(id, None);
        Assert.NotNull(before);
        AssertSameRecord(before, after);
        Assert.Equal(before.LeaseExpiresAt, after!.LeaseExpiresAt);

        // The current holder's short lease was not extended by the stale renewal: it can be taken over again.
        await AdvanceClockAsync(PastShort);
        var again = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.TakenOver, again.Outcome);
    }

    [Fact]
    public async Task RenewLease_CompletedRecord_IsRefusedAndResponseKept()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, SampleResponse(), LongExpiration, None));

        Assert.False(await store.TryRenewLeaseAsync(id, reserved.Record.FencingToken, LongLease, None));

        var record = await store.GetAsync(id, None);
        Assert.Equal(IdempotencyRecordState.Completed, record?.State);
        AssertSameResponse(SampleResponse(), record?.Response);
    }

    [Fact]
    public async Task RenewLease_ReleasedOrMissingRecord_IsRefusedAndCreatesNothing()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.True(await store.TryReleaseAsync(id, reserved.Record.FencingToken, None));

        Assert.False(await store.TryRenewLeaseAsync(id, reserved.Record.FencingToken, LongLease, None));
        Assert.False(await store.TryRenewLeaseAsync(NewId(), reserved.Record.FencingToken, LongLease, None));
        Assert.Null(await store.GetAsync(id, None));
    }

    [Fact]
    public async Task Release_WithRecoveryPoint_KeepsItAndNextReserveTakesOverAtOnce()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.True(await store.TrySetRecoveryPointAsync(id, reserved.Record.FencingToken, "charged", LongLease, None));

        Assert.True(await store.TryReleaseAsync(id, reserved.Record.FencingToken, None));
        var kept = await store.GetAsync(id, None);
        Assert.NotNull(kept);
        Assert.Equal("charged", kept.RecoveryPoint);

        var retry = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        Assert.Equal(ReservationOutcome.TakenOver, retry.Outcome);
        Assert.True(retry.MustExecute);
        Assert.Equal("charged", retry.Record.RecoveryPoint);
        Assert.NotEqual(reserved.Record.FencingToken, retry.Record.FencingToken);
        Assert.False(await store.TryCompleteAsync(id, reserved.Record.FencingToken, SampleResponse(), LongExpiration, None));
        Assert.True(await store.TryCompleteAsync(id, retry.Record.FencingToken, SampleResponse(), LongExpiration, None));
    }

    [Fact]
    public async Task Reserve_LeaseExpired_TakesOverWithNewToken()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var first = await store.TryReserveAsync(id, FingerprintA, ShortLease, LongExpiration, None);
        Assert.True(await store.TrySetRecoveryPointAsync(id, first.Record.FencingToken, "charged", ShortLease, None));
        await AdvanceClockAsync(PastShort);

        var second = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        Assert.Equal(ReservationOutcome.TakenOver, second.Outcome);
        Assert.True(second.MustExecute);
        Assert.NotEqual(first.Record.FencingToken, second.Record.FencingToken);
        Assert.Equal("charged", second.Record.RecoveryPoint);
        Assert.Equal(IdempotencyRecordState.InProgress, second.Record.State);
        Assert.Equal(second.Record.FencingToken, (await store.GetAsync(id, None))?.FencingToken);

        var third = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.InProgress, third.Outcome);
        Assert.Equal(second.Record.FencingToken, third.Record.FencingToken);
    }

    [Fact]
    public async Task StaleToken_AfterTakeOver_IsRefusedEverywhereAndNewTokenSucceeds()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var stale = await store.TryReserveAsync(id, FingerprintA, ShortLease, LongExpiration, None);
        await AdvanceClockAsync(PastShort);
        var current = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.TakenOver, current.Outcome);
        var staleToken = stale.Record.FencingToken;
        var token = current.Record.FencingToken;

        Assert.False(await store.TrySetRecoveryPointAsync(id, staleToken, "stale-phase", LongLease, None));
        Assert.False(await store.TryReleaseAsync(id, staleToken, None));
        Assert.False(await store.TryCompleteAsync(id, staleToken, new IdempotentResponse(200, [], new byte[] { 9 }), LongExpiration, None));
        var untouched = await store.GetAsync(id, None);
        Assert.NotNull(untouched);
        Assert.Equal(token, untouched.FencingToken);
        Assert.Equal(IdempotencyRecordState.InProgress, untouched.State);
        Assert.Null(untouched.RecoveryPoint);

        Assert.True(await store.TrySetRecoveryPointAsync(id, token, "phase-1", LongLease, None));
        var response = SampleResponse();
        Assert.True(await store.TryCompleteAsync(id, token, response, LongExpiration, None));
        var completed = await store.GetAsync(id, None);
        Assert.NotNull(completed);
        Assert.Equal(IdempotencyRecordState.Completed, completed.State);
        Assert.Equal(token, completed.FencingToken);
        AssertSameResponse(response, completed.Response);
    }

    [Fact]
    public async Task NewToken_AfterTakeOver_CanRelease()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var stale = await store.TryReserveAsync(id, FingerprintA, ShortLease, LongExpiration, None);
        await AdvanceClockAsync(PastShort);
        var current = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        Assert.False(await store.TryReleaseAsync(id, stale.Record.FencingToken, None));
        Assert.True(await store.TryReleaseAsync(id, current.Record.FencingToken, None));

        Assert.Null(await store.GetAsync(id, None));
    }

    [Fact]
    public async Task Get_AfterExpiration_ReturnsNull()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, SampleResponse(), ShortExpiration, None));
        Assert.NotNull(await store.GetAsync(id, None));

        await AdvanceClockAsync(PastShort);

        Assert.Null(await store.GetAsync(id, None));
    }

    [Fact]
    public async Task Reserve_AfterExpiration_AcquiresAnewWithTokenNeverSeenBefore()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var tokens = new List<long>();

        var first = await store.TryReserveAsync(id, FingerprintA, ShortLease, ShortExpiration + ShortExpiration, None);
        tokens.Add(first.Record.FencingToken);
        await AdvanceClockAsync(PastShort);
        var takeOver = await store.TryReserveAsync(id, FingerprintA, ShortLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.TakenOver, takeOver.Outcome);
        tokens.Add(takeOver.Record.FencingToken);
        Assert.True(await store.TryCompleteAsync(id, takeOver.Record.FencingToken, SampleResponse(), ShortExpiration, None));
        await AdvanceClockAsync(PastShort);

        Assert.Null(await store.GetAsync(id, None));
        var fresh = await store.TryReserveAsync(id, FingerprintB, LongLease, LongExpiration, None);

        Assert.Equal(ReservationOutcome.Acquired, fresh.Outcome);
        Assert.Equal(FingerprintB, fresh.Record.Fingerprint);
        Assert.Null(fresh.Record.RecoveryPoint);
        Assert.Null(fresh.Record.Response);
        Assert.DoesNotContain(fresh.Record.FencingToken, tokens);
        tokens.Add(fresh.Record.FencingToken);

        Assert.True(await store.TryReleaseAsync(id, fresh.Record.FencingToken, None));
        var afterRelease = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.Acquired, afterRelease.Outcome);
        Assert.DoesNotContain(afterRelease.Record.FencingToken, tokens);
    }

    [Fact]
    public async Task Reserve_InProgressRecordExpired_AcquiresAnewWithoutRecoveryPoint()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var first = await store.TryReserveAsync(id, FingerprintA, LongLease, ShortExpiration, None);
        Assert.True(await store.TrySetRecoveryPointAsync(id, first.Record.FencingToken, "charged", LongLease, None));
        await AdvanceClockAsync(PastShort);

        Assert.False(await store.TrySetRecoveryPointAsync(id, first.Record.FencingToken, "late", LongLease, None));
        var fresh = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        Assert.Equal(ReservationOutcome.Acquired, fresh.Outcome);
        Assert.Null(fresh.Record.RecoveryPoint);
        Assert.NotEqual(first.Record.FencingToken, fresh.Record.FencingToken);
        Assert.False(await store.TryCompleteAsync(id, first.Record.FencingToken, SampleResponse(), LongExpiration, None));
    }

    [Fact]
    public async Task Attempts_FirstReservationIsOne_EveryTakeOverAddsOne_KeptThroughRecoveryPointRenewalAndCompletion()
    {
        var store = await CreateStoreAsync();
        var id = NewId();

        var first = await store.TryReserveAsync(id, FingerprintA, ShortLease, LongExpiration, None);
        Assert.Equal(1, first.Record.Attempts);
        Assert.Equal(1, (await store.GetAsync(id, None))?.Attempts);
        Assert.Equal(1, (await store.TryReserveAsync(id, FingerprintA, ShortLease, LongExpiration, None)).Record.Attempts); // InProgress: no new attempt
        await AdvanceClockAsync(PastShort);

        var second = await store.TryReserveAsync(id, FingerprintA, ShortLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.TakenOver, second.Outcome);
        Assert.Equal(2, second.Record.Attempts);
        Assert.True(await store.TrySetRecoveryPointAsync(id, second.Record.FencingToken, "charged", ShortLease, None));
        Assert.Equal(2, (await store.GetAsync(id, None))?.Attempts);
        await AdvanceClockAsync(PastShort);

        var third = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.TakenOver, third.Outcome);
        Assert.Equal(3, third.Record.Attempts);
        Assert.True(await store.TryRenewLeaseAsync(id, third.Record.FencingToken, LongLease, None));
        Assert.Equal(3, (await store.GetAsync(id, None))?.Attempts);
        Assert.False(await store.TryCompleteAsync(id, second.Record.FencingToken, SampleResponse(), LongExpiration, None)); // a stale attempt counts nothing
        Assert.True(await store.TryCompleteAsync(id, third.Record.FencingToken, SampleResponse(), LongExpiration, None));

        Assert.Equal(3, (await store.GetAsync(id, None))?.Attempts);
        var replay = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.Completed, replay.Outcome);
        Assert.Equal(3, replay.Record.Attempts); // a replay is not an attempt
        Assert.Equal(3, (await store.TryReserveAsync(id, FingerprintB, LongLease, LongExpiration, None)).Record.Attempts); // nor is a refused key reuse
    }

    [Fact]
    public async Task Attempts_ReleasedWithRecoveryPoint_TakeOverAddsOne_ReleasedWithoutOrExpired_StartsAgainAtOne()
    {
        var store = await CreateStoreAsync();
        var kept = NewId();
        var reserved = await store.TryReserveAsync(kept, FingerprintA, LongLease, LongExpiration, None);
        Assert.True(await store.TrySetRecoveryPointAsync(kept, reserved.Record.FencingToken, "charged", LongLease, None));
        Assert.True(await store.TryReleaseAsync(kept, reserved.Record.FencingToken, None));
        Assert.Equal(1, (await store.GetAsync(kept, None))?.Attempts);
        var resumed = await store.TryReserveAsync(kept, FingerprintA, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.TakenOver, resumed.Outcome);
        Assert.Equal(2, resumed.Record.Attempts);

        var deleted = NewId();
        var once = await store.TryReserveAsync(deleted, FingerprintA, LongLease, LongExpiration, None);
        Assert.True(await store.TryReleaseAsync(deleted, once.Record.FencingToken, None));
        var again = await store.TryReserveAsync(deleted, FingerprintA, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.Acquired, again.Outcome);
        Assert.Equal(1, again.Record.Attempts);

        var expiring = NewId();
        var short1 = await store.TryReserveAsync(expiring, FingerprintA, ShortLease, ShortExpiration + ShortExpiration, None);
        await AdvanceClockAsync(PastShort);
        Assert.Equal(2, (await store.TryReserveAsync(expiring, FingerprintA, ShortLease, ShortExpiration, None)).Record.Attempts);
        await AdvanceClockAsync(PastShort + PastShort);
        var fresh = await store.TryReserveAsync(expiring, FingerprintA, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.Acquired, fresh.Outcome);
        Assert.NotEqual(short1.Record.FencingToken, fresh.Record.FencingToken);
        Assert.Equal(1, fresh.Record.Attempts);
    }

    [Fact]
    public async Task Complete_ExpirationCountsFromCompletion()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var reservationExpiration = TimeSpan.FromMilliseconds(1200);
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, reservationExpiration, None);
        await AdvanceClockAsync(TimeSpan.FromMilliseconds(800));

        Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, SampleResponse(), reservationExpiration, None));
        await AdvanceClockAsync(TimeSpan.FromMilliseconds(800));

        var replay = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.Completed, replay.Outcome);

        await AdvanceClockAsync(TimeSpan.FromMilliseconds(1000));
        Assert.Null(await store.GetAsync(id, None));
    }

    [Fact]
    public async Task Reserve_64ParallelRacersOnOneKey_ExactlyOneAcquires()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        using var start = new ManualResetEventSlim();

        var racers = Enumerable.Range(0, 64)
            .Select(_ => Task.Run(async () =>
            {
                start.Wait();
                return await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
            }))
            .ToArray();
        start.Set();
        var results = await Task.WhenAll(racers);

        var winner = Assert.Single(results, r => r.Outcome == ReservationOutcome.Acquired);
        Assert.Equal(63, results.Count(r => r.Outcome == ReservationOutcome.InProgress));
        Assert.All(results, r => Assert.Equal(winner.Record.FencingToken, r.Record.FencingToken));
    }

    [Fact]
    public async Task Reserve_32ParallelRacersOnExpiredLease_ExactlyOneTakesOver()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var crashed = await store.TryReserveAsync(id, FingerprintA, ShortLease, LongExpiration, None);
        await AdvanceClockAsync(PastShort);

        var results = await RaceAsync(32, () => store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None));

        var winner = Assert.Single(results, r => r.Outcome == ReservationOutcome.TakenOver);
        Assert.NotEqual(crashed.Record.FencingToken, winner.Record.FencingToken);
        Assert.Equal(31, results.Count(r => r.Outcome == ReservationOutcome.InProgress));
        Assert.All(results, r => Assert.Equal(winner.Record.FencingToken, r.Record.FencingToken));
    }

    [Fact]
    public async Task Reserve_32ParallelRacersOnExpiredRecord_ExactlyOneAcquires()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var first = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.True(await store.TryCompleteAsync(id, first.Record.FencingToken, SampleResponse(), ShortExpiration, None));
        await AdvanceClockAsync(PastShort);

        var results = await RaceAsync(32, () => store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None));

        var winner = Assert.Single(results, r => r.Outcome == ReservationOutcome.Acquired);
        Assert.NotEqual(first.Record.FencingToken, winner.Record.FencingToken);
        Assert.Equal(31, results.Count(r => r.Outcome == ReservationOutcome.InProgress));
        Assert.All(results, r => Assert.Equal(winner.Record.FencingToken, r.Record.FencingToken));
    }

    [Fact]
    public async Task Reserve_64ParallelReplaysOfCompleted_AllReplayAndRecordIsUnchanged()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
        Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, SampleResponse(), LongExpiration, None));
        var before = await store.GetAsync(id, None);

        var results = await RaceAsync(64, () => store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None));

        Assert.All(results, r =>
        {
            Assert.Equal(ReservationOutcome.Completed, r.Outcome);
            AssertSameResponse(SampleResponse(), r.Record.Response);
        });
        AssertSameRecord(before!, await store.GetAsync(id, None));
    }

    private static async Task<ReservationResult[]> RaceAsync(int racers, Func<ValueTask<ReservationResult>> reserve)
    {
        using var start = new ManualResetEventSlim();
        var tasks = Enumerable.Range(0, racers)
            .Select(_ => Task.Run(async () =>
            {
                start.Wait();
                return await reserve();
            }))
            .ToArray();
        start.Set();
        return await Task.WhenAll(tasks);
    }

    [Fact]
    public async Task Reserve_16KeysWith16RacersEachInterleaved_ExactlyOneAcquiresPerKey()
    {
        var store = await CreateStoreAsync();
        var ids = Enumerable.Range(0, 16).Select(_ => NewId()).ToArray();
        using var start = new ManualResetEventSlim();

        var racers = Enumerable.Range(0, 16 * 16)
            .Select(i => ids[i % ids.Length])
            .Select(id => Task.Run(async () =>
            {
                start.Wait();
                return (Id: id, Result: await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None));
            }))
            .ToArray();
        start.Set();
        var results = await Task.WhenAll(racers);

        foreach (var group in results.GroupBy(r => r.Id))
        {
            Assert.Equal(16, group.Count());
            var winner = Assert.Single(group, r => r.Result.Outcome == ReservationOutcome.Acquired);
            Assert.Equal(15, group.Count(r => r.Result.Outcome == ReservationOutcome.InProgress));
            Assert.All(group, r => Assert.Equal(winner.Result.Record.FencingToken, r.Result.Record.FencingToken));
        }

        Assert.Equal(16, results.Select(r => r.Id).Distinct().Count());
    }

    [Fact]
    public async Task Complete_OneMebibyteBody_RoundTripsExactly()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var body = new byte[1024 * 1024];
        new Random(42).NextBytes(body);
        var response = new IdempotentResponse(200, [new("Content-Type", "application/octet-stream")], body);
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, response, LongExpiration, None));
        var replay = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        Assert.Equal(ReservationOutcome.Completed, replay.Outcome);
        Assert.NotNull(replay.Record.Response);
        Assert.True(body.AsSpan().SequenceEqual(replay.Record.Response.Body.Span));
    }

    [Fact]
    public async Task Complete_BodySliceOfLargerBuffer_StoresOnlyTheSlice()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var buffer = new byte[] { 0, 1, 2, 3, 4, 5, 6, 7 };
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, new IdempotentResponse(200, [], buffer.AsMemory(2, 3)), LongExpiration, None));
        buffer.AsSpan().Clear();

        Assert.Equal(new byte[] { 2, 3, 4 }, (await store.GetAsync(id, None))?.Response?.Body.ToArray());
    }

    [Fact]
    public async Task Complete_BodyOmitted_FlagRoundTrips()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var response = new IdempotentResponse(201, [new("Location", "/big/1")], ReadOnlyMemory<byte>.Empty, bodyOmitted: true);
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, response, LongExpiration, None));

        var stored = await store.GetAsync(id, None);
        AssertSameResponse(response, stored?.Response);
        Assert.True(stored!.Response!.BodyOmitted);
    }

    [Fact]
    public async Task Complete_EmptyBodyAndNoHeaders_RoundTrips()
    {
        var store = await CreateStoreAsync();
        var id = NewId();
        var response = new IdempotentResponse(204, [], ReadOnlyMemory<byte>.Empty);
        var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);

        Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, response, LongExpiration, None));

        var stored = await store.GetAsync(id, None);
        AssertSameResponse(response, stored?.Response);
        Assert.Empty(stored!.Response!.Headers);
        Assert.Equal(0, stored.Response.Body.Length);
        Assert.False(stored.Response.BodyOmitted);
    }

    [Fact]
    public async Task Reserve_UnicodeScopesAndKeys_StayDistinctAndRoundTrip()
    {
        var store = await CreateStoreAsync();
        var key = Guid.NewGuid().ToString();
        IdempotencyRecordId[] ids =
        [
            new("tenant-é", "POST /paiements/{id}", key),
            new("tenant-e\u0301", "POST /paiements/{id}", key),
            new("tenant-e", "POST /paiements/{id}", key),
            new("Tenant-e", "POST /paiements/{id}", key),
            new("日本", "POST /注文", key),
            new("日本", "POST /注文/🎉", key),
            new("🎉", "POST /🎉", "key-" + key),
            new("🎉", "POST /🎉", "KEY-" + key),
        ];

        var tokens = new HashSet<long>();
        foreach (var id in ids)
        {
            var result = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
            Assert.Equal(ReservationOutcome.Acquired, result.Outcome);
            Assert.True(tokens.Add(result.Record.FencingToken));
            var body = Encoding.UTF8.GetBytes(id.ToString());
            Assert.True(await store.TryCompleteAsync(id, result.Record.FencingToken, new IdempotentResponse(200, [new("X-Scope", "ok")], body), LongExpiration, None));
        }

        foreach (var id in ids)
        {
            var stored = await store.GetAsync(id, None);
            Assert.NotNull(stored);
            Assert.Equal(id, stored.Id);
            Assert.Equal(id.ToString(), Encoding.UTF8.GetString(stored.Response!.Body.Span));
        }
    }

    [Fact]
    public async Task Reserve_SameKeyOtherTenantOrOperation_IsIndependentRecord()
    {
        var store = await CreateStoreAsync();
        var key = Guid.NewGuid().ToString();
        var original = new IdempotencyRecordId("tenant-1", "POST /payments", key);
        var otherTenant = original with { Tenant = "tenant-2" };
        var otherOperation = original with { Operation = "POST /refunds" };
        var first = await store.TryReserveAsync(original, FingerprintA, LongLease, LongExpiration, None);
        Assert.True(await store.TryCompleteAsync(original, first.Record.FencingToken, SampleResponse(), LongExpiration, None));

        var byTenant = await store.TryReserveAsync(otherTenant, FingerprintB, LongLease, LongExpiration, None);
        var byOperation = await store.TryReserveAsync(otherOperation, FingerprintA, LongLease, LongExpiration, None);

        Assert.Equal(ReservationOutcome.Acquired, byTenant.Outcome);
        Assert.Equal(ReservationOutcome.Acquired, byOperation.Outcome);
        Assert.Null(byTenant.Record.Response);
        Assert.Null(byOperation.Record.Response);
        Assert.True(await store.TryReleaseAsync(otherTenant, byTenant.Record.FencingToken, None));
        Assert.Equal(IdempotencyRecordState.Completed, (await store.GetAsync(original, None))?.State);
        Assert.Equal(IdempotencyRecordState.InProgress, (await store.GetAsync(otherOperation, None))?.State);
        Assert.Null(await store.GetAsync(otherTenant, None));
    }

    [Fact]
    public async Task Reserve_EmptyTenantAndAnonymousTenant_AreIndependentRecords()
    {
        // The shared anonymous scope is the empty tenant string, which no real tenant id can equal.
        var store = await CreateStoreAsync();
        var key = Guid.NewGuid().ToString();
        var anonymousScope = new IdempotencyRecordId(string.Empty, "POST /payments", key);
        var namedAnonymous = anonymousScope with { Tenant = "anonymous" };

        var first = await store.TryReserveAsync(anonymousScope, FingerprintA, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.Acquired, first.Outcome);
        Assert.Equal(string.Empty, first.Record.Id.Tenant);
        Assert.True(await store.TryCompleteAsync(anonymousScope, first.Record.FencingToken, SampleResponse(), LongExpiration, None));

        var other = await store.TryReserveAsync(namedAnonymous, FingerprintB, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.Acquired, other.Outcome);
        Assert.Null(other.Record.Response);

        var replay = await store.TryReserveAsync(anonymousScope, FingerprintA, LongLease, LongExpiration, None);
        Assert.Equal(ReservationOutcome.Completed, replay.Outcome);
        AssertSameResponse(SampleResponse(), replay.Record.Response);
        var stored = await store.GetAsync(anonymousScope, None);
        Assert.Equal(string.Empty, stored?.Id.Tenant);
        Assert.Equal(FingerprintA, stored?.Fingerprint);
        Assert.Equal(IdempotencyRecordState.InProgress, (await store.GetAsync(namedAnonymous, None))?.State);
    }

    [Fact]
    public async Task Reserve_CanceledToken_Throws()
    {
        var store = await CreateStoreAsync();
        using var canceled = new CancellationTokenSource();
        await canceled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(
            async () => await store.TryReserveAsync(NewId(), FingerprintA, LongLease, LongExpiration, canceled.Token));
    }

    [Fact]
    public async Task PurgeExpired_WhenSweeper_DeletesExpiredInBoundedBatchesAndKeepsLiveRecords()
    {
        var store = await CreateStoreAsync();
        if (store is not IIdempotencyStoreSweeper sweeper)
        {
            return;
        }

        var expiring = Enumerable.Range(0, 5).Select(_ => NewId()).ToArray();
        var live = Enumerable.Range(0, 2).Select(_ => NewId()).ToArray();
        foreach (var id in expiring)
        {
            await store.TryReserveAsync(id, FingerprintA, LongLease, ShortExpiration, None);
        }

        foreach (var id in live)
        {
            var reserved = await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None);
            Assert.True(await store.TryCompleteAsync(id, reserved.Record.FencingToken, SampleResponse(), LongExpiration, None));
        }

        Assert.Equal(0, await sweeper.PurgeExpiredAsync(10, None));
        await AdvanceClockAsync(PastShort);

        Assert.Equal(2, await sweeper.PurgeExpiredAsync(2, None));
        Assert.Equal(2, await sweeper.PurgeExpiredAsync(2, None));
        Assert.Equal(1, await sweeper.PurgeExpiredAsync(2, None));
        Assert.Equal(0, await sweeper.PurgeExpiredAsync(2, None));
        foreach (var id in live)
        {
            Assert.Equal(IdempotencyRecordState.Completed, (await store.GetAsync(id, None))?.State);
        }

        foreach (var id in expiring)
        {
            Assert.Null(await store.GetAsync(id, None));
            Assert.Equal(ReservationOutcome.Acquired, (await store.TryReserveAsync(id, FingerprintA, LongLease, LongExpiration, None)).Outcome);
        }
    }
}
