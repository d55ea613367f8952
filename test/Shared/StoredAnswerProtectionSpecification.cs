using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.DataProtection.KeyManagement.Internal;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Oncely.AspNetCore;

namespace Oncely.Storage.Specification;

/// <summary>
/// Stored answers encrypted at rest (<c>ProtectStoredAnswers()</c>), on a real pipeline over a real store: what the store
/// holds (rows, keys, audit entries, read raw) carries no plaintext of a known answer or refused payload, while replays
/// return the exact answer; keys rotate (old answers still replay) and are revoked or lost (the answer is refused with
/// <c>410</c>, row 6a, and the handler does not run again); answers stored before protection was turned on still replay;
/// minimisation keeps no success body. Derived per store; every application start opens the store afresh on the same
/// database, as a restarted process would.
/// </summary>
public abstract class StoredAnswerProtectionSpecification : IDisposable
{
    protected const string Admin = "/admin/idempotency";
    private const string Problems = "https://oncely.dev/problems/";

    private readonly DirectoryInfo _keyRing = Directory.CreateTempSubdirectory("oncely-key-ring-");
    private readonly ConcurrentDictionary<string, int> _calls = new();

    /// <summary>Opens the store on the test's database (schema initialised); called at every application start.</summary>
    protected abstract ValueTask<IIdempotencyStore> OpenStoreAsync();

    /// <summary>Everything the test's database holds, raw: every row's columns, every key's values, every audit entry.</summary>
    protected abstract Task<IReadOnlyList<byte[]>> ReadAtRestAsync();

    /// <summary>A marker only the first request's <c>memo</c> carries; the answer echoes it in its body and its <c>Location</c>.</summary>
    // Ids shown in headers, logs and the operator API are letters only: a random hex id sometimes holds 13 to 19 digits in
    // a row that pass the Luhn check, which Oncely rightly masks as a card number, and the tests compare them as sent.
    protected string Memo { get; } = "memo-" + Letters(Guid.NewGuid().ToString("N"));

    /// <summary>A marker only the first request's <c>details</c> carries; the answer echoes it in its body.</summary>
    protected string Details { get; } = "details-" + Guid.NewGuid().ToString("N");

    protected int CallsTo(string key) => _calls.TryGetValue(key, out var n) ? n : 0;

    public virtual void Dispose()
    {
        GC.SuppressFinalize(this);
        try
        {
            _keyRing.Delete(recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task Completion_Protected_NoPlaintextAtRestAndReplaysTheExactAnswer()
    {
        await using var app = await StartAsync();
        var key = NewKey();

        using var first = await app.PayAsync("/payments", key, 100, Memo, Details);
        var body = await first.Content.ReadAsByteArrayAsync();
        using var replay = await app.PayAsync("/payments", key, 100, Memo, Details);

        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        await AssertReplaysAsync(first, body, replay);
        Assert.Equal(1, CallsTo(key));
        await AssertNoPlaintextAtRestAsync(Memo, Details);
        await AssertAtRestAsync("Oncely-Protected");
    }

    [Fact]
    public async Task KeyReuse_Protected_AuditHoldsNoPlaintextAndOperatorsReadIt()
    {
        await using var app = await StartAsync();
        var key = NewKey();
        var refusedMemo = "refused-" + Letters(Guid.NewGuid().ToString("N"));
        using var first = await app.PayAsync("/payments", key, 100, Memo, Details);

        using var reused = await app.PayAsync("/payments", key, 999, refusedMemo, Details);
        using var audit = await app.GetAsync($"{Admin}/audit?tenant=tenant-a&key={key}");

        Assert.Equal(HttpStatusCode.UnprocessableEntity, reused.StatusCode);
        Assert.Equal(HttpStatusCode.OK, audit.StatusCode);
        var entries = JsonDocument.Parse(await audit.Content.ReadAsStringAsync()).RootElement.GetProperty("entries");
        var payload = Assert.Single(entries.EnumerateArray()).GetProperty("payload").GetString()!;
        Assert.Contains(refusedMemo, payload, StringComparison.Ordinal);
        Assert.Equal(1, CallsTo(key));
        await AssertNoPlaintextAtRestAsync(refusedMemo, Memo, Details);
        await AssertAtRestAsync("oncely-protected:v1:");
    }

    [Fact]
    public async Task Rotation_NewDefaultKey_OldAnswersStillReplayAndRevokingTheOldKeyRefusesOnlyThem()
    {
        await using var app = await StartAsync();
        var before = NewKey();
        var after = NewKey();
        using var beforeFirst = await app.PayAsync("/payments", before, 100, Memo, Details);
        var beforeBody = await beforeFirst.Content.ReadAsByteArrayAsync();
        var keys = app.Services.GetRequiredService<IKeyManager>();
        var oldKey = Assert.Single(keys.GetAllKeys());

        var newKey = keys.CreateNewKey(DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(90));
        // Data Protection picks a changed key ring up in the background: wait until the new key is the default one.
        var ring = app.Services.GetRequiredService<IKeyRingProvider>();
        for (var deadline = DateTime.UtcNow.AddSeconds(10); ring.GetCurrentKeyRing().DefaultKeyId != newKey.KeyId && DateTime.UtcNow < deadline;)
        {
            await Task.Delay(50);
        }

        Assert.Equal(newKey.KeyId, ring.GetCurrentKeyRing().DefaultKeyId);
        using var afterFirst = await app.PayAsync("/payments", after, 200, Memo, Details);
        var afterBody = await afterFirst.Content.ReadAsByteArrayAsync();
        using var beforeReplay = await app.PayAsync("/payments", before, 100, Memo, Details);
        await AssertReplaysAsync(beforeFirst, beforeBody, beforeReplay);

        keys.RevokeKey(oldKey.KeyId, "rotation test: the old key is compromised");
        // Likewise, the refusal comes once the revocation is picked up.
        using var beforeRefused = await UntilAsync(() => app.PayAsync("/payments", before, 100, Memo, Details), r => r.StatusCode == HttpStatusCode.Gone);
        using var afterReplay = await app.PayAsync("/payments", after, 200, Memo, Details);

        await AssertUnreadableAsync(beforeRefused, 201);
        await AssertReplaysAsync(afterFirst, afterBody, afterReplay);
        Assert.Equal(1, CallsTo(before));
        Assert.Equal(1, CallsTo(after));
    }

    [Fact]
    public async Task KeyRingLost_AnswerRefusedWith410_HandlerDoesNotRunAgain()
    {
        var key = NewKey();
        await using (var app = await StartAsync())
        {
            using var first = await app.PayAsync("/payments", key, 100, Memo, Details);
            Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        }

        foreach (var file in _keyRing.GetFiles())
        {
            file.Delete();
        }

        await using var restarted = await StartAsync();
        using var refused = await restarted.PayAsync("/payments", key, 100, Memo, Details);
        var fresh = NewKey();
        using var next = await restarted.PayAsync("/payments", fresh, 100, Memo, Details);

        await AssertUnreadableAsync(refused, 201);
        Assert.Equal(1, CallsTo(key));
        Assert.Equal(HttpStatusCode.Created, next.StatusCode);
        Assert.Equal(1, CallsTo(fresh));
    }

    [Fact]
    public async Task OperatorDetail_Protected_DecryptedForOperators_ShownUnreadableOnceTheKeyRingIsLost()
    {
        var key = NewKey();
        var detail = $"{Admin}/records/detail?tenant=tenant-a&operation={Uri.EscapeDataString("POST /payments")}&key={key}";
        await using (var app = await StartAsync())
        {
            using var first = await app.PayAsync("/payments", key, 100, Memo, Details);
            Assert.Equal(HttpStatusCode.Created, first.StatusCode);

            using var shown = await app.GetAsync(detail);

            var answer = JsonDocument.Parse(await shown.Content.ReadAsStringAsync()).RootElement.GetProperty("answer");
            Assert.True(answer.GetProperty("protected").GetBoolean());
            Assert.True(answer.GetProperty("readable").GetBoolean());
            Assert.Equal(201, answer.GetProperty("statusCode").GetInt32());
            var headers = answer.GetProperty("headers").EnumerateArray().Select(h => (h.GetProperty("name").GetString(), h.GetProperty("value").GetString())).ToList();
            Assert.Equal([("Content-Type", "application/json; charset=utf-8"), ("Location", $"/payments/{Memo}/{key}")], headers);
            Assert.Equal((await first.Content.ReadAsByteArrayAsync()).Length, answer.GetProperty("bodyLength").GetInt32());
            Assert.Equal("hidden", answer.GetProperty("bodyStatus").GetString());
        }

        foreach (var file in _keyRing.GetFiles())
        {
            file.Delete();
        }

        await using var restarted = await StartAsync();
        using var unreadable = await restarted.GetAsync(detail);

        var text = await unreadable.Content.ReadAsStringAsync();
        Assert.True(HttpStatusCode.OK == unreadable.StatusCode, text);
        var lost = JsonDocument.Parse(text).RootElement.GetProperty("answer");
        Assert.False(lost.GetProperty("readable").GetBoolean());
        Assert.True(lost.GetProperty("protected").GetBoolean());
        Assert.Equal(201, lost.GetProperty("statusCode").GetInt32());
        Assert.Empty(lost.GetProperty("headers").EnumerateArray());
        Assert.Equal("unreadable", lost.GetProperty("bodyStatus").GetString());
        Assert.Equal(JsonValueKind.Null, lost.GetProperty("bodyLength").ValueKind);
        Assert.DoesNotContain("Oncely-Protected", text, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(1, CallsTo(key));
    }

    [Fact]
    public async Task ProtectionTurnedOn_AnswerStoredInClearBefore_StillReplays()
    {
        var key = NewKey();
        HttpResponseMessage first;
        byte[] body;
        await using (var clear = await StartAsync(protect: false))
        {
            first = await clear.PayAsync("/payments", key, 100, Memo, Details);
            body = await first.Content.ReadAsByteArrayAsync();
        }

        await AssertAtRestAsync(Details);
        await using var app = await StartAsync();
        using var replay = await app.PayAsync("/payments", key, 100, Memo, Details);

        await AssertReplaysAsync(first, body, replay);
        Assert.Equal(1, CallsTo(key));
        first.Dispose();
    }

    [Fact]
    public async Task Minimisation_SuccessBodyNotStored_ReplaysStatusAndHeadersWithTheBodyOmitted()
    {
        await using var app = await StartAsync(protect: false, minimise: true);
        var key = NewKey();

        using var first = await app.PayAsync("/payments", key, 100, Memo, Details);
        var body = await first.Content.ReadAsStringAsync();
        using var replay = await app.PayAsync("/payments", key, 100, Memo, Details);

        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Contains(Details, body, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Created, replay.StatusCode);
        Assert.Equal("true", replay.Headers.GetValues(IdempotencyOptions.ReplayedHeaderName).Single());
        Assert.Equal("true", replay.Headers.GetValues(IdempotencyOptions.BodyOmittedHeaderName).Single());
        Assert.Equal(first.Headers.Location, replay.Headers.Location);
        Assert.Empty(await replay.Content.ReadAsByteArrayAsync());
        Assert.Equal(1, CallsTo(key));
        await AssertNoPlaintextAtRestAsync(Details);
        using var detail = await app.GetAsync($"{Admin}/records/detail?tenant=tenant-a&operation={Uri.EscapeDataString("POST /payments")}&key={key}");
        var answer = JsonDocument.Parse(await detail.Content.ReadAsStringAsync()).RootElement.GetProperty("answer");
        Assert.True(answer.GetProperty("bodyOmitted").GetBoolean());
        Assert.Equal("omitted", answer.GetProperty("bodyStatus").GetString());
        Assert.Equal(201, answer.GetProperty("statusCode").GetInt32());
    }

    protected static string NewKey() => Letters(Guid.NewGuid().ToString("D"));

    private static string Letters(string id) => string.Concat(id.Select(c => (char)(char.IsAsciiDigit(c) ? 'g' + (c - '0') : c)));

    private static async Task<HttpResponseMessage> UntilAsync(Func<Task<HttpResponseMessage>> send, Func<HttpResponseMessage, bool> done)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            var response = await send();
            if (done(response) || DateTime.UtcNow > deadline)
            {
                return response;
            }

            response.Dispose();
            await Task.Delay(50);
        }
    }

    protected static async Task AssertReplaysAsync(HttpResponseMessage first, byte[] firstBody, HttpResponseMessage replay)
    {
        var replayBody = await replay.Content.ReadAsByteArrayAsync();
        Assert.True(HttpStatusCode.Created == replay.StatusCode, $"Expected the replayed 201, got {(int)replay.StatusCode}: {Encoding.UTF8.GetString(replayBody)}");
        Assert.Equal("true", replay.Headers.GetValues(IdempotencyOptions.ReplayedHeaderName).Single());
        Assert.Equal(firstBody, replayBody);
        Assert.Equal(first.Headers.Location, replay.Headers.Location);
        Assert.Equal(first.Content.Headers.ContentType, replay.Content.Headers.ContentType);
    }

    protected static async Task AssertUnreadableAsync(HttpResponseMessage response, int storedStatus)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(HttpStatusCode.Gone == response.StatusCode, $"Expected 410, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(text).RootElement;
        Assert.Equal(Problems + IdempotencyProblemTypes.StoredAnswerUnreadable, problem.GetProperty("type").GetString());
        Assert.Contains($"answered {storedStatus}", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.False(response.Headers.Contains(IdempotencyOptions.ReplayedHeaderName));
    }

    protected async Task AssertNoPlaintextAtRestAsync(params string[] markers)
    {
        var held = await ReadAtRestAsync();
        Assert.NotEmpty(held);
        foreach (var marker in markers)
        {
            var bytes = Encoding.UTF8.GetBytes(marker);
            Assert.DoesNotContain(held, value => value.AsSpan().IndexOf(bytes) >= 0);
        }
    }

    protected async Task AssertAtRestAsync(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        Assert.Contains(await ReadAtRestAsync(), value => value.AsSpan().IndexOf(bytes) >= 0);
    }

    /// <summary>Maps endpoints of the derived store (transactional completion, one-commit) on the application.</summary>
    protected virtual void MapStoreEndpoints(WebApplication web)
    {
    }

    /// <summary>The answer every payment endpoint gives, byte for byte, and records it was called.</summary>
    protected (IdempotentResponse Answer, string Location) Answer(string key, JsonElement request)
    {
        var call = _calls.AddOrUpdate(key, 1, (_, n) => n + 1);
        var memo = request.GetProperty("memo").GetString()!;
        var body = JsonSerializer.SerializeToUtf8Bytes(new
        {
            key,
            call,
            amount = request.GetProperty("amount").GetInt64(),
            memo,
            details = request.GetProperty("details").GetString(),
        });
        var location = $"/payments/{memo}/{key}";
        return (new IdempotentResponse(201, [new("Content-Type", "application/json; charset=utf-8"), new("Location", location)], body), location);
    }

    protected static async Task WriteAsync(HttpContext context, IdempotentResponse answer)
    {
        context.Response.StatusCode = answer.StatusCode;
        foreach (var (name, value) in answer.Headers)
        {
            context.Response.Headers.Append(name, value);
        }

        context.Response.ContentLength = answer.Body.Length;
        await context.Response.Body.WriteAsync(answer.Body);
    }

    protected async Task<App> StartAsync(bool protect = true, bool minimise = false)
    {
        var store = await OpenStoreAsync();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        builder.Services.AddDataProtection().SetApplicationName("oncely-protection-tests").PersistKeysToFileSystem(_keyRing);
        builder.Services.AddAuthentication(OperatorApiTestAuth.SchemeName).AddScheme<AuthenticationSchemeOptions, OperatorApiTestAuth>(OperatorApiTestAuth.SchemeName, null);
        builder.Services.AddAuthorizationBuilder().AddPolicy("operator", p => p.RequireRole("operator"));
        var idempotency = builder.Services.AddIdempotency(o => o.StoreSuccessfulResponseBodies = !minimise).UseStore(_ => store);
        if (protect)
        {
            idempotency.ProtectStoredAnswers();
        }

        var web = builder.Build();
        web.UseAuthentication();
        web.UseAuthorization();
        web.UseIdempotency();
        web.MapPost("/payments", async (HttpContext context) =>
        {
            using var request = await JsonDocument.ParseAsync(context.Request.Body);
            var (answer, _) = Answer(context.GetIdempotencyExecution()!.Id.Key, request.RootElement);
            await WriteAsync(context, answer);
        }).RequireIdempotencyKey();
        MapStoreEndpoints(web);
        web.MapIdempotencyAdmin(Admin).RequireAuthorization("operator");
        await web.StartAsync();
        return new App(web);
    }

    protected sealed class App(WebApplication app) : IAsyncDisposable
    {
        private readonly HttpClient _client = app.GetTestClient();

        public IServiceProvider Services => app.Services;

        public Task<HttpResponseMessage> PayAsync(string path, string key, long amount, string memo, string details)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, path)
            {
                Content = new StringContent(JsonSerializer.Serialize(new { amount, memo, details }), Encoding.UTF8, "application/json"),
            };
            request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
            request.Headers.Authorization = new AuthenticationHeaderValue(OperatorApiTestAuth.SchemeName, "tenant-a");
            return _client.SendAsync(request);
        }

        public Task<HttpResponseMessage> GetAsync(string pathAndQuery)
        {
            var request = new HttpRequestMessage(HttpMethod.Get, pathAndQuery);
            request.Headers.Authorization = new AuthenticationHeaderValue(OperatorApiTestAuth.SchemeName, "operator:alice");
            return _client.SendAsync(request);
        }

        public async ValueTask DisposeAsync()
        {
            _client.Dispose();
            await app.DisposeAsync();
        }
    }
}

/// <summary>
/// <see cref="StoredAnswerProtectionSpecification"/> for stores that complete inside the application's transaction:
/// the answer written by transactional completion and by a one-commit endpoint is protected too.
/// </summary>
public abstract class TransactionalStoredAnswerProtectionSpecification : StoredAnswerProtectionSpecification
{
    /// <summary>
    /// In one transaction of the application on the store's database: reserves first when <paramref name="execution"/>
    /// is one-commit (<see cref="IdempotencyExecution.ReserveInTransactionAsync"/>), writes a business row, completes
    /// the record with <paramref name="answer"/> (the store's transactional completion, or EF Core's staging), commits.
    /// </summary>
    protected abstract Task CompleteInTransactionAsync(IdempotencyExecution execution, IdempotentResponse answer);

    protected override void MapStoreEndpoints(WebApplication web)
    {
        web.MapPost("/payments/tx", HandleAsync).RequireIdempotencyKey();
        web.MapPost("/payments/one-commit", HandleAsync).RequireIdempotencyKey().WithOneCommitReservation();
    }

    [Theory]
    [InlineData("/payments/tx")]
    [InlineData("/payments/one-commit")]
    public async Task CompletionInTransaction_Protected_NoPlaintextAtRestAndReplaysTheExactAnswer(string path)
    {
        await using var app = await StartAsync();
        var key = NewKey();

        using var first = await app.PayAsync(path, key, 100, Memo, Details);
        var body = await first.Content.ReadAsByteArrayAsync();
        using var replay = await app.PayAsync(path, key, 100, Memo, Details);

        Assert.True(HttpStatusCode.Created == first.StatusCode, Encoding.UTF8.GetString(body));
        await AssertReplaysAsync(first, body, replay);
        Assert.Equal(1, CallsTo(key));
        await AssertNoPlaintextAtRestAsync(Memo, Details);
        await AssertAtRestAsync("Oncely-Protected");
    }

    private async Task HandleAsync(HttpContext context)
    {
        using var request = await JsonDocument.ParseAsync(context.Request.Body);
        var execution = context.GetIdempotencyExecution()!;
        var (answer, _) = Answer(execution.Id.Key, request.RootElement);
        await CompleteInTransactionAsync(execution, answer);
        await WriteAsync(context, answer);
    }
}
