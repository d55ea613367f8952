using System.Text;
using Oncely.PostgreSql.Tests.Infrastructure;

namespace Oncely.PostgreSql.Tests;

[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlIdempotencyStoreTests(PostgresFixture fixture) : StoreTestBase(fixture)
{
    private static readonly TimeSpan ShortLease = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan PastShortLease = TimeSpan.FromMilliseconds(1500);

    [Fact]
    public async Task TryReserveAsync_NewKey_AcquiredWithInProgressRecord()
    {
        var id = NewId();

        var result = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        Assert.Equal(ReservationOutcome.Acquired, result.Outcome);
        Assert.True(result.MustExecute);
        Assert.Equal(IdempotencyRecordState.InProgress, result.Record.State);
        Assert.Equal(id, result.Record.Id);
        Assert.Equal(Fingerprint('a'), result.Record.Fingerprint);
        Assert.True(result.Record.LeaseExpiresAt < result.Record.ExpiresAt);
        Assert.Null(result.Record.RecoveryPoint);
        Assert.Null(result.Record.Response);
    }

    [Fact]
    public async Task TryReserveAsync_SameKeyWhileLeaseValid_InProgressWithHoldersToken()
    {
        var id = NewId();
        var first = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        var second = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        Assert.Equal(ReservationOutcome.InProgress, second.Outcome);
        Assert.False(second.MustExecute);
        Assert.Equal(first.Record.FencingToken, second.Record.FencingToken);
    }

    [Fact]
    public async Task TryReserveAsync_DifferentFingerprint_FingerprintMismatchAndRecordUntouched()
    {
        var id = NewId();
        var first = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
        Assert.True(await Store.TryCompleteAsync(id, first.Record.FencingToken, Response(201, "secret"), Hour, default));
        var before = await Store.GetAsync(id, default);

        var mismatch = await Store.TryReserveAsync(id, Fingerprint('b'), Minute, Hour, default);

        Assert.Equal(ReservationOutcome.FingerprintMismatch, mismatch.Outcome);
        Assert.Equal(Fingerprint('a'), mismatch.Record.Fingerprint);
        Assert.Null(mismatch.Record.Response); // another payload's caller never sees the stored answer
        var after = await Store.GetAsync(id, default);
        Assert.NotNull(after);
        Assert.Equal(before!.FencingToken, after.FencingToken);
        Assert.Equal(before.ExpiresAt, after.ExpiresAt);
        Assert.Equal(IdempotencyRecordState.Completed, after.State);
    }

    [Fact]
    public async Task TryReserveAsync_DifferentFingerprintWhileInProgress_FingerprintMismatch()
    {
        var id = NewId();
        await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        var mismatch = await Store.TryReserveAsync(id, Fingerprint('b'), Minute, Hour, default);

        Assert.Equal(ReservationOutcome.FingerprintMismatch, mismatch.Outcome);
    }

    [Fact]
    public async Task TryCompleteAsync_ThenReserve_ReplaysExactBytesStatusAndHeaders()
    {
        var id = NewId();
        var body = Enumerable.Range(0, 256).Select(i => (byte)i).Concat(Encoding.UTF8.GetBytes("{\"amount\": 100.0, \"note\": \"é✓\"}")).ToArray();
        KeyValuePair<string, string>[] headers =
        [
            new("Content-Type", "application/json; charset=utf-8"),
            new("Location", "/payments/42"),
            new("X-Custom", "first"),
            new("X-Custom", "second \"quoted\" \\ value"),
            new("ETag", "W/\"abc\""),
        ];
        var reservation = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        Assert.True(await Store.TryCompleteAsync(id, reservation.Record.FencingToken, new IdempotentResponse(201, headers, body), Hour, default));
        var replay = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        Assert.Equal(ReservationOutcome.Completed, replay.Outcome);
        Assert.False(replay.MustExecute);
        var response = Assert.IsType<IdempotentResponse>(replay.Record.Response);
        Assert.Equal(201, response.StatusCode);
        Assert.Equal(body, response.Body.ToArray());
        Assert.Equal(headers, response.Headers);
        Assert.False(response.BodyOmitted);
        Assert.Equal(reservation.Record.FencingToken, replay.Record.FencingToken);
    }

    [Fact]
    public async Task TryCompleteAsync_EmptyBodyAndNoHeaders_ReplaysEmpty()
    {
        var id = NewId();
        var reservation = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        Assert.True(await Store.TryCompleteAsync(id, reservation.Record.FencingToken, new IdempotentResponse(204, [], ReadOnlyMemory<byte>.Empty), Hour, default));
        var replay = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        Assert.Equal(204, replay.Record.Response!.StatusCode);
        Assert.True(replay.Record.Response.Body.IsEmpty);
        Assert.Empty(replay.Record.Response.Headers);
    }

    [Fact]
    public async Task TryCompleteAsync_BodyOmitted_ReplaysFlag()
    {
        var id = NewId();
        var reservation = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        Assert.True(await Store.TryCompleteAsync(id, reservation.Record.FencingToken, new IdempotentResponse(200, [], ReadOnlyMemory<byte>.Empty, bodyOmitted: true), Hour, default));
        var replay = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        Assert.True(replay.Record.Response!.BodyOmitted);
    }

    [Fact]
    public async Task TryCompleteAsync_WrongToken_RefusedAndRecordStaysInProgress()
    {
        var id = NewId();
        var reservation = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        Assert.False(await Store.TryCompleteAsync(id, reservation.Record.FencingToken + 1000, Response(200, "x"), Hour, default));

        var record = await Store.GetAsync(id, default);
        Assert.Equal(IdempotencyRecordState.InProgress, record!.State);
        Assert.Null(record.Response);
    }

    [Fact]
    public async Task TryCompleteAsync_Twice_SecondRefusedAndFirstAnswerKept()
    {
        var id = NewId();
        var reservation = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
        Assert.True(await Store.TryCompleteAsync(id, reservation.Record.FencingToken, Response(201, "first"), Hour, default));

        Assert.False(await Store.TryCompleteAsync(id, reservation.Record.FencingToken, Response(500, "second"), Hour, default));

        var record = await Store.GetAsync(id, default);
        Assert.Equal("first", Encoding.UTF8.GetString(record!.Response!.Body.Span));
    }

    [Fact]
    public async Task TryCompleteAsync_MissingRecord_ReturnsFalse()
    {
        Assert.False(await Store.TryCompleteAsync(NewId(), 1, Response(200, "x"), Hour, default));
    }

    [Fact]
    public async Task TryReleaseAsync_WithoutRecoveryPoint_DeletesRecordSoRetryAcquires()
    {
        var id = NewId();
        var first = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        Assert.True(await Store.TryReleaseAsync(id, first.Record.FencingToken, default));

        Assert.Null(await Store.GetAsync(id, default));
        var retry = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
        Assert.Equal(ReservationOutcome.Acquired, retry.Outcome);
        Assert.NotEqual(first.Record.FencingToken, retry.Record.FencingToken);
    }

    [Fact]
    public async Task TryReleaseAsync_WithRecoveryPoint_KeepsRecordAndRetryTakesOverThere()
    {
        var id = NewId();
        var first = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
        Assert.True(await Store.TrySetRecoveryPointAsync(id, first.Record.FencingToken, "charged", Minute, default));

        Assert.True(await Store.TryReleaseAsync(id, first.Record.FencingToken, default));

        var kept = await Store.GetAsync(id, default);
        Assert.NotNull(kept);
        Assert.Equal("charged", kept.RecoveryPoint);
        var retry = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
        Assert.Equal(ReservationOutcome.TakenOver, retry.Outcome);
        Assert.Equal("charged", retry.Record.RecoveryPoint);
        Assert.NotEqual(first.Record.FencingToken, retry.Record.FencingToken);
        Assert.Equal(kept.ExpiresAt, retry.Record.ExpiresAt);
    }

    [Fact]
    public async Task TryReleaseAsync_StaleOrCompleted_ReturnsFalseAndChangesNothing()
    {
        var id = NewId();
        var first = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        Assert.False(await Store.TryReleaseAsync(id, first.Record.FencingToken + 1000, default));
        Assert.NotNull(await Store.GetAsync(id, default));

        Assert.True(await Store.TryCompleteAsync(id, first.Record.FencingToken, Response(200, "done"), Hour, default));
        Assert.False(await Store.TryReleaseAsync(id, first.Record.FencingToken, default));
        Assert.Equal(IdempotencyRecordState.Completed, (await Store.GetAsync(id, default))!.State);
    }

    [Fact]
    public async Task TrySetRecoveryPointAsync_ValidToken_StoresPointAndRenewsLease()
    {
        var id = NewId();
        var first = await Store.TryReserveAsync(id, Fingerprint('a'), TimeSpan.FromSeconds(10), Hour, default);

        Assert.True(await Store.TrySetRecoveryPointAsync(id, first.Record.FencingToken, "phase-1", TimeSpan.FromMinutes(30), default));

        var record = await Store.GetAsync(id, default);
        Assert.Equal("phase-1", record!.RecoveryPoint);
        Assert.True(record.LeaseExpiresAt > first.Record.LeaseExpiresAt);
        Assert.Equal(first.Record.FencingToken, record.FencingToken);
    }

    [Fact]
    public async Task TrySetRecoveryPointAsync_StaleToken_ReturnsFalseAndChangesNothing()
    {
        var id = NewId();
        var first = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        Assert.False(await Store.TrySetRecoveryPointAsync(id, first.Record.FencingToken + 1000, "phase-1", Minute, default));

        Assert.Null((await Store.GetAsync(id, default))!.RecoveryPoint);
    }

    [Fact]
    public async Task TryReserveAsync_LeaseExpired_TakenOverWithNewTokenAndStaleTokenRefused()
    {
        var id = NewId();
        var stale = await Store.TryReserveAsync(id, Fingerprint('a'), ShortLease, Hour, default);
        Assert.True(await Store.TrySetRecoveryPointAsync(id, stale.Record.FencingToken, "reserved-funds", ShortLease, default));
        await Task.Delay(PastShortLease);

        var takeOver = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        Assert.Equal(ReservationOutcome.TakenOver, takeOver.Outcome);
        Assert.True(takeOver.MustExecute);
        Assert.NotEqual(stale.Record.FencingToken, takeOver.Record.FencingToken);
        Assert.Equal("reserved-funds", takeOver.Record.RecoveryPoint);
        Assert.Equal(stale.Record.ExpiresAt, takeOver.Record.ExpiresAt);

        Assert.False(await Store.TryCompleteAsync(id, stale.Record.FencingToken, Response(200, "stale"), Hour, default));
        Assert.False(await Store.TrySetRecoveryPointAsync(id, stale.Record.FencingToken, "stale", Minute, default));
        Assert.False(await Store.TryReleaseAsync(id, stale.Record.FencingToken, default));
        Assert.True(await Store.TryCompleteAsync(id, takeOver.Record.FencingToken, Response(200, "fresh"), Hour, default));
        var replay = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
        Assert.Equal("fresh", Encoding.UTF8.GetString(replay.Record.Response!.Body.Span));
    }

    [Fact]
    public async Task TryReserveAsync_LeaseExpiredOtherFingerprint_FingerprintMismatchNotTakenOver()
    {
        var id = NewId();
        var first = await Store.TryReserveAsync(id, Fingerprint('a'), ShortLease, Hour, default);
        await Task.Delay(PastShortLease);

        var other = await Store.TryReserveAsync(id, Fingerprint('b'), Minute, Hour, default);

        Assert.Equal(ReservationOutcome.FingerprintMismatch, other.Outcome);
        Assert.Equal(first.Record.FencingToken, (await Store.GetAsync(id, default))!.FencingToken);
    }

    [Fact]
    public async Task TryReserveAsync_AfterExpiry_AcquiredWithTokenDifferentFromAllEarlier()
    {
        var id = NewId();
        var tokens = new HashSet<long>();
        var first = await Store.TryReserveAsync(id, Fingerprint('a'), ShortLease, ShortLease, default);
        tokens.Add(first.Record.FencingToken);
        Assert.True(await Store.TryCompleteAsync(id, first.Record.FencingToken, Response(200, "old"), ShortLease, default));
        await Task.Delay(PastShortLease);

        Assert.Null(await Store.GetAsync(id, default));
        var second = await Store.TryReserveAsync(id, Fingerprint('a'), ShortLease, ShortLease, default);
        Assert.Equal(ReservationOutcome.Acquired, second.Outcome);
        Assert.Null(second.Record.Response);
        Assert.True(tokens.Add(second.Record.FencingToken));
        await Task.Delay(PastShortLease);

        // Expired and re-created with another payload: absent means absent, whatever it held.
        var third = await Store.TryReserveAsync(id, Fingerprint('c'), Minute, Hour, default);
        Assert.Equal(ReservationOutcome.Acquired, third.Outcome);
        Assert.Equal(Fingerprint('c'), third.Record.Fingerprint);
        Assert.True(tokens.Add(third.Record.FencingToken));
        Assert.False(await Store.TryCompleteAsync(id, first.Record.FencingToken, Response(200, "x"), Hour, default));
        Assert.False(await Store.TryCompleteAsync(id, second.Record.FencingToken, Response(200, "x"), Hour, default));
    }

    [Fact]
    public async Task TryReserveAsync_ExpiredRecordWithRecoveryPoint_ReplacedWithoutIt()
    {
        var id = NewId();
        var first = await Store.TryReserveAsync(id, Fingerprint('a'), ShortLease, ShortLease, default);
        Assert.True(await Store.TrySetRecoveryPointAsync(id, first.Record.FencingToken, "phase-1", ShortLease, default));
        await Task.Delay(PastShortLease);

        var again = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);

        Assert.Equal(ReservationOutcome.Acquired, again.Outcome);
        Assert.Null(again.Record.RecoveryPoint);
    }

    [Fact]
    public async Task TryReserveAsync_SameKeyOtherTenantOrOperation_IndependentRecords()
    {
        var id = NewId();
        var first = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
        Assert.True(await Store.TryCompleteAsync(id, first.Record.FencingToken, Response(200, "tenant-a's"), Hour, default));

        var otherTenant = await Store.TryReserveAsync(id with { Tenant = "tenant-b" }, Fingerprint('b'), Minute, Hour, default);
        var otherOperation = await Store.TryReserveAsync(id with { Operation = "POST /refunds" }, Fingerprint('a'), Minute, Hour, default);

        Assert.Equal(ReservationOutcome.Acquired, otherTenant.Outcome);
        Assert.Equal(ReservationOutcome.Acquired, otherOperation.Outcome);
        Assert.Null(otherTenant.Record.Response);
    }

    [Fact]
    public async Task GetAsync_MissingRecord_ReturnsNull()
    {
        Assert.Null(await Store.GetAsync(NewId(), default));
    }

    [Fact]
    public async Task GetAsync_CompletedRecord_ReturnsResponse()
    {
        var id = NewId();
        var first = await Store.TryReserveAsync(id, Fingerprint('a'), Minute, Hour, default);
        await Store.TryCompleteAsync(id, first.Record.FencingToken, Response(202, "accepted"), Hour, default);

        var record = await Store.GetAsync(id, default);

        Assert.Equal(IdempotencyRecordState.Completed, record!.State);
        Assert.Equal(202, record.Response!.StatusCode);
        Assert.Equal("accepted", Encoding.UTF8.GetString(record.Response.Body.Span));
    }

    [Fact]
    public async Task AppendAsync_KeyReuse_WritesAuditRow()
    {
        var id = NewId();
        var occurred = new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.FromHours(2));

        await Store.AppendAsync(new KeyReuseAuditEntry(id, Fingerprint('a'), Fingerprint('b'), "{\"amount\":\"***\"}", occurred), default);

        await using var command = DataSource.CreateCommand(
            $"SELECT stored_fingerprint, attempted_fingerprint, payload, occurred_at FROM {Store.Schema.AuditTable} WHERE idem_key = @key");
        command.Parameters.AddWithValue("key", id.Key);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal(Fingerprint('a'), reader.GetString(0));
        Assert.Equal(Fingerprint('b'), reader.GetString(1));
        Assert.Equal("{\"amount\":\"***\"}", reader.GetString(2));
        Assert.Equal(occurred, reader.GetFieldValue<DateTimeOffset>(3));
    }

    [Fact]
    public async Task TryReserveAsync_CallerCancelled_ThrowsOperationCanceled()
    {
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await Store.TryReserveAsync(NewId(), Fingerprint('a'), Minute, Hour, cancelled.Token));
    }

    private static IdempotentResponse Response(int status, string body)
        => new(status, [new("Content-Type", "text/plain")], Encoding.UTF8.GetBytes(body));
}
