using System.Text;
using Microsoft.AspNetCore.DataProtection;

namespace Oncely.Tests;

/// <summary>
/// The engine's side of stored-answer protection and minimisation, without a transport: what the store is handed, what
/// a replay gets, and the decision for an answer that cannot be opened (the transports' behaviour is tested per store in
/// <c>StoredAnswerProtectionSpecification</c>).
/// </summary>
public sealed class StoredAnswerProtectionTests
{
    private const string Fingerprint = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    private static readonly IdempotentResponse Answer = new(201, [new("Content-Type", "application/json"), new("Location", "/payments/secret-location")], "{\"card\":\"secret-body\"}"u8.ToArray());

    [Fact]
    public async Task ExecuteAsync_Protected_StoreHoldsTheEnvelopeAndTheReplayIsTheAnswer()
    {
        var store = new InMemoryIdempotencyStore();
        var executor = new IdempotencyExecutor(store, new IdempotencyEngineOptions(), dataProtectionProvider: new EphemeralDataProtectionProvider());
        var id = NewId();

        await executor.ExecuteAsync(id, Fingerprint, (_, _) => ValueTask.FromResult(Answer));
        var replay = await executor.ExecuteAsync(id, Fingerprint, (_, _) => throw new InvalidOperationException("must not run again"));

        var stored = (await store.GetAsync(id, CancellationToken.None))!.Response!;
        Assert.Equal(201, stored.StatusCode);
        Assert.Equal([new KeyValuePair<string, string>("Oncely-Protected", "v1")], stored.Headers);
        Assert.Equal(-1, stored.Body.Span.IndexOf("secret"u8));
        Assert.Equal(IdempotencyDecisionKind.Replay, replay.Kind);
        Assert.Equal(Answer.Headers, replay.Response!.Headers);
        Assert.Equal(Answer.Body.ToArray(), replay.Response.Body.ToArray());
    }

    [Fact]
    public async Task ExecuteAsync_AnswerSealedUnderAKeyThisRingLacks_StoredAnswerUnreadableAndNotRunAgain()
    {
        var store = new InMemoryIdempotencyStore();
        var id = NewId();
        await new IdempotencyExecutor(store, new IdempotencyEngineOptions(), dataProtectionProvider: new EphemeralDataProtectionProvider())
            .ExecuteAsync(id, Fingerprint, (_, _) => ValueTask.FromResult(Answer));
        var runs = 0;

        var other = new IdempotencyExecutor(store, new IdempotencyEngineOptions(), dataProtectionProvider: new EphemeralDataProtectionProvider());
        var result = await other.ExecuteAsync(id, Fingerprint, (_, _) =>
        {
            runs++;
            return ValueTask.FromResult(Answer);
        });
        var unprotected = await new IdempotencyExecutor(store, new IdempotencyEngineOptions()).BeginAsync(id, Fingerprint);

        Assert.Equal(IdempotencyDecisionKind.StoredAnswerUnreadable, result.Kind);
        Assert.Null(result.Response);
        Assert.Equal(0, runs);
        Assert.Equal(IdempotencyDecisionKind.StoredAnswerUnreadable, unprotected.Kind);
        Assert.Equal(201, unprotected.Record!.Response!.StatusCode);
    }

    [Fact]
    public async Task BeginAsync_AnswerCopiedIntoAnotherRecord_DoesNotOpen()
    {
        var provider = new EphemeralDataProtectionProvider();
        var protection = new StoredAnswerProtection(provider);
        var store = new InMemoryIdempotencyStore();
        var executor = new IdempotencyExecutor(store, new IdempotencyEngineOptions(), dataProtectionProvider: provider);
        var victim = NewId();
        var sealedForOther = protection.Protect(new IdempotencyRecordId("tenant-b", victim.Operation, victim.Key), Answer);
        var reserved = await store.TryReserveAsync(victim, Fingerprint, TimeSpan.FromSeconds(30), TimeSpan.FromHours(1), CancellationToken.None);
        await store.TryCompleteAsync(victim, reserved.Record.FencingToken, sealedForOther, TimeSpan.FromHours(1), CancellationToken.None);

        var decision = await executor.BeginAsync(victim, Fingerprint);

        Assert.Equal(IdempotencyDecisionKind.StoredAnswerUnreadable, decision.Kind);
    }

    [Fact]
    public void TryUnprotect_UnknownEnvelopeVersion_Refused()
    {
        var protection = new StoredAnswerProtection(new EphemeralDataProtectionProvider());
        var id = NewId();
        var sealedAnswer = protection.Protect(id, Answer);
        var future = new IdempotentResponse(201, [new("Oncely-Protected", "v2")], sealedAnswer.Body);

        Assert.False(protection.TryUnprotect(id, future, out _, out var failure));
        Assert.Contains("v2", failure!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AuditPayload_Protected_OpensOnlyForItsRecord()
    {
        var protection = new StoredAnswerProtection(new EphemeralDataProtectionProvider());
        var id = NewId();

        var stored = protection.ProtectAuditPayload(id, "{\"memo\":\"refused-secret\"}");

        Assert.StartsWith("oncely-protected:v1:", stored, StringComparison.Ordinal);
        Assert.DoesNotContain("refused-secret", stored, StringComparison.Ordinal);
        Assert.Equal("{\"memo\":\"refused-secret\"}", protection.UnprotectAuditPayload(id, stored));
        Assert.Null(protection.UnprotectAuditPayload(new IdempotencyRecordId("tenant-b", id.Operation, id.Key), stored));
        Assert.Equal("written in clear", protection.UnprotectAuditPayload(id, "written in clear"));
    }

    [Theory]
    [InlineData(201, true)]
    [InlineData(200, true)]
    [InlineData(422, false)]
    [InlineData(404, false)]
    public async Task Minimisation_SuccessBodiesDropped_ErrorBodiesKept(int status, bool omitted)
    {
        var store = new InMemoryIdempotencyStore();
        var executor = new IdempotencyExecutor(store, new IdempotencyEngineOptions { StoreSuccessfulResponseBodies = false });
        var id = NewId();
        var answer = new IdempotentResponse(status, Answer.Headers, Encoding.UTF8.GetBytes("{\"status\":" + status + "}"));

        await executor.ExecuteAsync(id, Fingerprint, (_, _) => ValueTask.FromResult(answer));
        var replay = await executor.ExecuteAsync(id, Fingerprint, (_, _) => throw new InvalidOperationException("must not run again"));

        Assert.Equal(omitted, replay.Response!.BodyOmitted);
        Assert.Equal(omitted ? [] : answer.Body.ToArray(), replay.Response.Body.ToArray());
        Assert.Equal(status, replay.Response.StatusCode);
        Assert.Equal(Answer.Headers, replay.Response.Headers);
    }

    private static IdempotencyRecordId NewId() => new("tenant-a", "POST /payments", Guid.NewGuid().ToString("D"));
}
