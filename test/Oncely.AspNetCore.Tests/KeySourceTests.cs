using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Oncely.AspNetCore.Tests;

/// <summary>
/// Keys read from another header or from a JSON member of the body, and tenants named by an
/// <see cref="IIdempotencySenderVerifier"/>: the same decision table, reached from other sources.
/// </summary>
public sealed class KeySourceTests
{
    [Fact]
    public async Task KeyFromHeader_SameHeaderValue_ReplaysWithoutRunningHandler()
    {
        await using var app = await KeySourceApp.StartAsync();

        var first = await app.PostAsync("/from-header", "{\"amount\":1}", ("Event-Id", "evt_1"));
        var second = await app.PostAsync("/from-header", "{\"amount\":1}", ("Event-Id", "evt_1"));

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal("true", second.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(await first.Content.ReadAsStringAsync(), await second.Content.ReadAsStringAsync());
        Assert.Equal(1, app.CallsTo("from-header"));
        Assert.NotNull(await app.Store.GetAsync(new IdempotencyRecordId(TestApp.DefaultUser, "POST /from-header", "evt_1"), default));
    }

    [Fact]
    public async Task KeyFromHeader_OnlyIdempotencyKeySent_400KeyMissingNamingTheHeader()
    {
        await using var app = await KeySourceApp.StartAsync();

        var response = await app.PostAsync("/from-header", "{\"amount\":1}", ("Idempotency-Key", "k-1"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await DecisionTableTests.ProblemOf(response, "idempotency-key-missing");
        Assert.Contains("Event-Id header", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, app.CallsTo("from-header"));
    }

    [Theory]
    [InlineData("has space")]
    [InlineData("a,b")]
    [InlineData("\"\"")]
    public async Task KeyFromHeader_InvalidValue_400KeyInvalid(string value)
    {
        await using var app = await KeySourceApp.StartAsync();

        var response = await app.PostAsync("/from-header", "{\"amount\":1}", ("Event-Id", value));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await DecisionTableTests.ProblemOf(response, "idempotency-key-invalid");
        Assert.Equal(0, app.CallsTo("from-header"));
        Assert.Equal(0, ((InMemoryIdempotencyStore)app.Store).Count);
    }

    [Fact]
    public async Task KeyFromHeader_SentTwice_400KeyInvalid()
    {
        await using var app = await KeySourceApp.StartAsync();

        var response = await app.PostAsync("/from-header", "{\"amount\":1}", ("Event-Id", "a"), ("Event-Id", "b"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await DecisionTableTests.ProblemOf(response, "idempotency-key-invalid");
    }

    [Fact]
    public async Task KeyFromJsonMember_SameId_ReplaysAndTheHandlerReadsTheWholeBody()
    {
        await using var app = await KeySourceApp.StartAsync();

        var first = await app.PostAsync("/from-member", "{\"id\":\"evt_7\",\"amount\":5}");
        var second = await app.PostAsync("/from-member", "{ \"amount\": 5, \"id\": \"evt_7\" }");

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(5, JsonDocument.Parse(await first.Content.ReadAsStringAsync()).RootElement.GetProperty("amount").GetInt64());
        Assert.Equal("true", second.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(1, app.CallsTo("from-member"));
        Assert.NotNull(await app.Store.GetAsync(new IdempotencyRecordId(TestApp.DefaultUser, "POST /from-member", "evt_7"), default));
    }

    [Fact]
    public async Task KeyFromJsonMember_SameIdOtherPayload_422KeyReused()
    {
        await using var app = await KeySourceApp.StartAsync();

        await app.PostAsync("/from-member", "{\"id\":\"evt_7\",\"amount\":5}");
        var reused = await app.PostAsync("/from-member", "{\"id\":\"evt_7\",\"amount\":6}");

        Assert.Equal(HttpStatusCode.UnprocessableEntity, reused.StatusCode);
        await DecisionTableTests.ProblemOf(reused, "idempotency-key-reused");
        Assert.Equal(1, app.CallsTo("from-member"));
    }

    [Fact]
    public async Task KeyFromJsonPointer_NestedAndInArray_ReadsTheMember()
    {
        await using var app = await KeySourceApp.StartAsync();

        await app.PostAsync("/from-pointer", "{\"data\":{\"items\":[{\"id\":\"first\"},{\"id\":\"second\"}]},\"amount\":1}");
        var replay = await app.PostAsync("/from-pointer", "{\"data\":{\"items\":[{\"id\":\"first\"},{\"id\":\"second\"}]},\"amount\":1}");

        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.NotNull(await app.Store.GetAsync(new IdempotencyRecordId(TestApp.DefaultUser, "POST /from-pointer", "second"), default));
    }

    [Theory]
    [InlineData("{\"amount\":1}", "idempotency-key-missing")]
    [InlineData("{\"id\":null,\"amount\":1}", "idempotency-key-missing")]
    [InlineData("[1,2]", "idempotency-key-missing")]
    [InlineData("", "idempotency-key-missing")]
    [InlineData("{\"id\":42,\"amount\":1}", "idempotency-key-invalid")]
    [InlineData("{\"id\":{\"x\":1},\"amount\":1}", "idempotency-key-invalid")]
    [InlineData("{\"id\":\"has space\",\"amount\":1}", "idempotency-key-invalid")]
    [InlineData("{\"id\":\"\",\"amount\":1}", "idempotency-key-invalid")]
    [InlineData("{\"id\":\"a\",\"ID\":\"b\",\"amount\":1}", "idempotency-key-invalid")]
    [InlineData("{\"id\":\"a\",\"id\":\"a\"}", "idempotency-key-invalid")]
    [InlineData("{\"id\":\"evt_1\"", "idempotency-key-invalid")]
    [InlineData("not json", "idempotency-key-invalid")]
    public async Task KeyFromJsonMember_MissingOrUnusable_400AndNothingRecorded(string body, string type)
    {
        await using var app = await KeySourceApp.StartAsync();

        var response = await app.PostAsync("/from-member", body);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await DecisionTableTests.ProblemOf(response, type);
        Assert.Contains("/id", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, app.CallsTo("from-member"));
        Assert.Equal(0, ((InMemoryIdempotencyStore)app.Store).Count);
    }

    [Fact]
    public async Task KeyFromJsonMember_KeyOverTheLengthLimit_400KeyInvalid()
    {
        await using var app = await KeySourceApp.StartAsync();

        var response = await app.PostAsync("/from-member", $"{{\"id\":\"{new string('k', 256)}\"}}");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await DecisionTableTests.ProblemOf(response, "idempotency-key-invalid");
    }

    [Fact]
    public async Task KeyFromJsonMember_MemberNamedInAnotherCase_IsTheKeyAsTheBinderWouldReadIt()
    {
        await using var app = await KeySourceApp.StartAsync();

        await app.PostAsync("/from-member", "{\"Id\":\"evt_9\",\"amount\":1}");

        Assert.NotNull(await app.Store.GetAsync(new IdempotencyRecordId(TestApp.DefaultUser, "POST /from-member", "evt_9"), default));
    }

    [Fact]
    public async Task KeyFromJsonMember_OptionalAndAbsent_PassesThroughWithTheBodyIntact()
    {
        await using var app = await KeySourceApp.StartAsync();

        var first = await app.PostAsync("/optional-member", "{\"amount\":3}");
        var second = await app.PostAsync("/optional-member", "{\"amount\":3}");

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(3, JsonDocument.Parse(await second.Content.ReadAsStringAsync()).RootElement.GetProperty("amount").GetInt64());
        Assert.Equal(2, app.CallsTo("optional-member"));
        Assert.Equal(0, ((InMemoryIdempotencyStore)app.Store).Count);
    }

    [Fact]
    public async Task KeyFromJsonMember_FromTheAttribute_IsReadLikeTheConvention()
    {
        await using var app = await KeySourceApp.StartAsync();

        await app.PostAsync("/attribute-member", "{\"ref\":\"r-1\",\"amount\":1}");
        var replay = await app.PostAsync("/attribute-member", "{\"ref\":\"r-1\",\"amount\":1}");

        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.NotNull(await app.Store.GetAsync(new IdempotencyRecordId(TestApp.DefaultUser, "POST /attribute-member", "r-1"), default));
    }

    [Fact]
    public async Task Attribute_KeyHeaderAndKeyJsonMemberBothSet_StopsTheApplicationAtStart()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => KeySourceApp.StartAsync(app =>
            app.MapPost("/both", () => Results.Ok()).RequireIdempotencyKey().WithMetadata(new IdempotentAttribute { KeyHeader = "a", KeyJsonMember = "b" })));

        Assert.Contains("KeyHeader and KeyJsonMember", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/a//b")]
    [InlineData("/a/~2")]
    [InlineData("/a~")]
    [InlineData(" ")]
    public void WithIdempotencyKeyFromJsonBody_MalformedPointer_Throws(string pointer)
    {
        var builder = WebApplication.CreateSlimBuilder();
        var app = builder.Build();

        Assert.ThrowsAny<ArgumentException>(() => app.MapPost("/x", () => Results.Ok()).WithIdempotencyKeyFromJsonBody(pointer));
    }

    [Fact]
    public async Task KeyFromJsonPointer_EscapedNames_AreUnescaped()
    {
        await using var app = await KeySourceApp.StartAsync();

        await app.PostAsync("/escaped", "{\"a/b\":{\"c~d\":\"evt_esc\"}}");

        Assert.NotNull(await app.Store.GetAsync(new IdempotencyRecordId(TestApp.DefaultUser, "POST /escaped", "evt_esc"), default));
    }

    [Fact]
    public async Task SenderVerifier_VerifiedSender_IsTheTenantWithoutAnAuthenticatedUser()
    {
        await using var app = await KeySourceApp.StartAsync();

        await app.PostAsync("/signed", "{\"id\":\"evt_1\"}", user: null, ("X-Sender", "acme"));
        await app.PostAsync("/signed", "{\"id\":\"evt_1\"}", user: null, ("X-Sender", "globex"));
        var replay = await app.PostAsync("/signed", "{\"id\":\"evt_1\"}", user: null, ("X-Sender", "acme"));

        // Two senders using the same event id are two records; each sender replays its own.
        Assert.Equal(2, app.CallsTo("signed"));
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Contains("acme", await replay.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.NotNull(await app.Store.GetAsync(new IdempotencyRecordId("acme", "POST /signed", "evt_1"), default));
        Assert.NotNull(await app.Store.GetAsync(new IdempotencyRecordId("globex", "POST /signed", "evt_1"), default));
    }

    [Fact]
    public async Task SenderVerifier_Refused_401WithTheVerifiersProblemAndNothingRecorded()
    {
        await using var app = await KeySourceApp.StartAsync();

        // The key is valid, the body is valid: the refusal comes first all the same.
        var response = await app.PostAsync("/signed", "{\"id\":\"evt_1\"}", user: TestApp.DefaultUser, ("X-Sender", "mallory"));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        await DecisionTableTests.ProblemOf(response, "test-sender-unknown");
        Assert.Equal(0, app.CallsTo("signed"));
        Assert.Equal(0, ((InMemoryIdempotencyStore)app.Store).Count);
    }

    [Fact]
    public async Task SenderVerifier_BodyOverTheLimit_413BeforeVerifying()
    {
        await using var app = await KeySourceApp.StartAsync(configure: o => o.MaxRequestBodySize = 16);

        var response = await app.PostAsync("/signed", "{\"id\":\"evt_1\",\"padding\":\"xxxxxxxxxxxxxxxx\"}", user: null, ("X-Sender", "acme"));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal(0, app.Verifications);
    }

    /// <summary>Trusts the <c>X-Sender</c> header for two known names: a stand-in for a signature check.</summary>
    private sealed class HeaderSenderVerifier(KeySourceApp owner) : IIdempotencySenderVerifier
    {
        public ValueTask<IdempotencySenderVerification> VerifyAsync(HttpContext context, ReadOnlyMemory<byte> body, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref owner.VerificationCount);
            Assert.False(body.IsEmpty); // the body is read before the verifier runs
            var sender = context.Request.Headers["X-Sender"].ToString();
            return ValueTask.FromResult(sender is "acme" or "globex"
                ? IdempotencySenderVerification.Verified(sender)
                : IdempotencySenderVerification.Refused("test-sender-unknown", "Unknown sender", "The X-Sender header names no known sender."));
        }
    }

    private sealed class KeySourceApp : IAsyncDisposable
    {
        public int VerificationCount;

        private readonly WebApplication _app;
        private readonly ConcurrentDictionary<string, int> _calls = new();

        private KeySourceApp(WebApplication app) => _app = app;

        public IIdempotencyStore Store => _app.Services.GetRequiredService<IIdempotencyStore>();

        public int Verifications => Volatile.Read(ref VerificationCount);

        private HttpClient Client { get; set; } = null!;

        public static async Task<KeySourceApp> StartAsync(Action<WebApplication>? map = null, Action<IdempotencyOptions>? configure = null)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseTestServer();
            builder.Logging.ClearProviders();
            builder.Services.AddAuthentication(TestAuthHandler.SchemeName).AddScheme<AuthenticationSchemeOptions, TestAuthHandler>(TestAuthHandler.SchemeName, null);
            builder.Services.AddAuthorization();
            builder.Services.AddIdempotency(configure);
            var app = builder.Build();
            var test = new KeySourceApp(app);
            app.UseAuthentication();
            app.UseAuthorization();
            app.UseIdempotency();
            if (map is not null)
            {
                map(app);
            }
            else
            {
                test.Map(app);
            }

            await app.StartAsync();
            test.Client = app.GetTestClient();
            return test;
        }

        public int CallsTo(string name) => _calls.TryGetValue(name, out var n) ? n : 0;

        public Task<HttpResponseMessage> PostAsync(string path, string body, params (string Name, string Value)[] headers)
            => PostAsync(path, body, TestApp.DefaultUser, headers);

        public Task<HttpResponseMessage> PostAsync(string path, string body, string? user, params (string Name, string Value)[] headers)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            foreach (var (name, value) in headers)
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }

            if (user is not null)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Test", user);
            }

            return Client.SendAsync(request);
        }

        public ValueTask DisposeAsync() => _app.DisposeAsync();

        private int Count(string name) => _calls.AddOrUpdate(name, 1, (_, n) => n + 1);

        private void Map(WebApplication app)
        {
            app.MapPost("/from-header", (Money body) => Results.Ok(new { call = Count("from-header"), body.Amount }))
                .RequireIdempotencyKey().WithIdempotencyKeyFromHeader("Event-Id");
            app.MapPost("/from-member", (Money body) => Results.Ok(new { call = Count("from-member"), body.Amount }))
                .RequireIdempotencyKey().WithIdempotencyKeyFromJsonBody("id");
            app.MapPost("/from-pointer", () => Results.Ok(new { call = Count("from-pointer") }))
                .RequireIdempotencyKey().WithIdempotencyKeyFromJsonBody("/data/items/1/id");
            app.MapPost("/escaped", () => Results.Ok(new { call = Count("escaped") }))
                .RequireIdempotencyKey().WithIdempotencyKeyFromJsonBody("/a~1b/c~0d");
            app.MapPost("/optional-member", (Money body) => Results.Ok(new { call = Count("optional-member"), body.Amount }))
                .AllowIdempotencyKey().WithIdempotencyKeyFromJsonBody("id");
            app.MapPost("/attribute-member", () => Results.Ok(new { call = Count("attribute-member") }))
                .RequireIdempotencyKey().WithMetadata(new IdempotentAttribute { KeyJsonMember = "ref" });
            app.MapPost("/signed", (HttpContext context) => Results.Ok(new { call = Count("signed"), sender = context.Request.Headers["X-Sender"].ToString() }))
                .RequireIdempotencyKey().WithIdempotencyKeyFromJsonBody("id").WithMetadata(new HeaderSenderVerifier(this));
        }
    }

    private sealed record Money(long Amount);
}
