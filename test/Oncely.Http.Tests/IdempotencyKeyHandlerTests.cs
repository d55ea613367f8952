using System.Net;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Polly;

namespace Oncely.Http.Tests;

public sealed class IdempotencyKeyHandlerTests(RecordingServer server) : IClassFixture<RecordingServer>
{
    private const string Payload = """{"amount":100,"currency":"EUR"}""";

    [Fact]
    public async Task Post_ServerFailsTwiceWith503_EveryAttemptCarriesSameKey()
    {
        var scenario = NewScenario();
        using var services = BuildServices();

        using var response = await Client(services).PostAsync($"/fail503/{scenario}/2", Json());

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var attempts = server.AttemptsOf(scenario);
        Assert.Equal(3, attempts.Count);
        Assert.NotNull(attempts[0].IdempotencyKey);
        Assert.All(attempts, a => Assert.Equal(attempts[0].IdempotencyKey, a.IdempotencyKey));
        Assert.Equal(attempts[0].IdempotencyKey, response.GetIdempotencyKey());
    }

    [Fact]
    public async Task Post_ConnectionDroppedTwice_EveryAttemptCarriesSameKey()
    {
        var scenario = NewScenario();
        using var services = BuildServices();

        using var response = await Client(services).PostAsync($"/drop/{scenario}/2", Json());

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var attempts = server.AttemptsOf(scenario);
        Assert.Equal(3, attempts.Count);
        Assert.Single(attempts.Select(a => a.IdempotencyKey).Distinct());
        Assert.Equal(attempts[0].IdempotencyKey, response.GetIdempotencyKey());
    }

    [Fact]
    public async Task Post_ResilienceHandlerAddedOutside_EveryAttemptStillCarriesSameKey()
    {
        var scenario = NewScenario();
        using var services = BuildServices(reversed: true);

        using var response = await Client(services).PostAsync($"/fail503/{scenario}/2", Json());

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var attempts = server.AttemptsOf(scenario);
        Assert.Equal(3, attempts.Count);
        Assert.NotNull(attempts[0].IdempotencyKey);
        Assert.Single(attempts.Select(a => a.IdempotencyKey).Distinct());
        Assert.Equal(attempts[0].IdempotencyKey, response.GetIdempotencyKey());
    }

    [Fact]
    public async Task Post_HedgingHandlerInside_EveryHedgedAttemptCarriesSameKey()
    {
        var scenario = NewScenario();
        var services = new ServiceCollection();
        services.AddHttpClient("x", c => c.BaseAddress = server.BaseAddress)
            .AddIdempotencyKeys()
            .AddStandardHedgingHandler().Configure(o => o.Hedging.Delay = TimeSpan.FromMilliseconds(10));
        using var provider = services.BuildServiceProvider();

        using var response = await Client(provider).PostAsync($"/fail503/{scenario}/1", Json());

        var attempts = server.AttemptsOf(scenario);
        Assert.Equal(2, attempts.Count); // the default MaxHedgedAttempts is 1
        Assert.NotNull(attempts[0].IdempotencyKey);
        Assert.Single(attempts.Select(a => a.IdempotencyKey).Distinct());
    }

    // Pins the documented pitfall (docs/client-handler.md): hedging clones the request from a snapshot taken before an
    // inner handler runs, so the idempotency handler must be added first. If this ever starts passing with one key,
    // update the docs.
    [Fact]
    public async Task Post_HedgingHandlerOutside_HedgedClonesGetDifferentKeys_WhichIsWhyOrderMatters()
    {
        var scenario = NewScenario();
        var services = new ServiceCollection();
        var builder = services.AddHttpClient("x", c => c.BaseAddress = server.BaseAddress);
        builder.AddStandardHedgingHandler().Configure(o => o.Hedging.Delay = TimeSpan.FromMilliseconds(10));
        builder.AddIdempotencyKeys();
        using var provider = services.BuildServiceProvider();

        using var response = await Client(provider).PostAsync($"/fail503/{scenario}/1", Json());

        var attempts = server.AttemptsOf(scenario);
        Assert.Equal(2, attempts.Count);
        Assert.Equal(2, attempts.Select(a => a.IdempotencyKey).Distinct().Count());
    }

    [Fact]
    public async Task Post_HandlerInsideResiliencePipeline_LogsOrderingWarningOnce()
    {
        var logs = new ListLoggerProvider();
        var services = new ServiceCollection();
        services.AddLogging(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Trace));
        var builder = services.AddHttpClient("x", c => c.BaseAddress = server.BaseAddress);
        builder.AddStandardResilienceHandler(FastRetries);
        builder.AddIdempotencyKeys();
        using var provider = services.BuildServiceProvider();
        var client = Client(provider);

        using var a = await client.PostAsync($"/ok/{NewScenario()}", Json());
        using var b = await client.PostAsync($"/ok/{NewScenario()}", Json());

        Assert.Single(logs.Entries, e => e.Category == "Oncely.Http.IdempotencyKeyHandler" && e.EventId.Id == 6 && e.Level == LogLevel.Warning);
    }

    [Fact]
    public async Task Post_HandlerOutsideResiliencePipeline_LogsNoOrderingWarning()
    {
        var logs = new ListLoggerProvider();
        var services = new ServiceCollection();
        services.AddLogging(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Trace));
        services.AddHttpClient("x", c => c.BaseAddress = server.BaseAddress).AddIdempotencyKeys().AddStandardResilienceHandler(FastRetries);
        using var provider = services.BuildServiceProvider();

        using var response = await Client(provider).PostAsync($"/ok/{NewScenario()}", Json());

        Assert.Contains(logs.Entries, e => e.Category == "Oncely.Http.IdempotencyKeyHandler" && e.EventId.Id == 1);
        Assert.DoesNotContain(logs.Entries, e => e.Category == "Oncely.Http.IdempotencyKeyHandler" && e.EventId.Id == 6);
    }

    [Fact]
    public async Task Post_TwoLogicalRequests_GetDifferentKeys()
    {
        var first = NewScenario();
        var second = NewScenario();
        using var services = BuildServices();
        var client = Client(services);

        using var a = await client.PostAsync($"/fail503/{first}/1", Json());
        using var b = await client.PostAsync($"/fail503/{second}/1", Json());

        var firstKey = Assert.Single(server.AttemptsOf(first).Select(x => x.IdempotencyKey).Distinct());
        var secondKey = Assert.Single(server.AttemptsOf(second).Select(x => x.IdempotencyKey).Distinct());
        Assert.NotNull(firstKey);
        Assert.NotNull(secondKey);
        Assert.NotEqual(firstKey, secondKey);
    }

    [Fact]
    public async Task Post_DefaultKeyFactory_SendsUuidVersion4()
    {
        var scenario = NewScenario();
        using var services = BuildServices();

        using var response = await Client(services).PostAsync($"/ok/{scenario}", Json());

        var key = Assert.Single(server.AttemptsOf(scenario)).IdempotencyKey;
        Assert.True(Guid.TryParseExact(key, "D", out var guid));
        Assert.Equal(4, guid.Version);
    }

    [Fact]
    public async Task Post_CallerSuppliedKey_IsKeptAcrossRetries()
    {
        var scenario = NewScenario();
        using var services = BuildServices();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/fail503/{scenario}/1") { Content = Json() };
        request.Headers.Add("Idempotency-Key", "order-42-charge");

        using var response = await Client(services).SendAsync(request);

        var attempts = server.AttemptsOf(scenario);
        Assert.Equal(2, attempts.Count);
        Assert.All(attempts, a => Assert.Equal("order-42-charge", a.IdempotencyKey));
        Assert.Equal("order-42-charge", response.GetIdempotencyKey());
    }

    [Fact]
    public async Task Post_CallerSuppliedQuotedKey_IsSentAsIsAndExposedUnquoted()
    {
        var scenario = NewScenario();
        using var services = BuildServices();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/ok/{scenario}") { Content = Json() };
        request.Headers.TryAddWithoutValidation("Idempotency-Key", "\"order-43\"");

        using var response = await Client(services).SendAsync(request);

        Assert.Equal("\"order-43\"", Assert.Single(server.AttemptsOf(scenario)).IdempotencyKey);
        Assert.Equal("order-43", response.GetIdempotencyKey());
    }

    [Fact]
    public async Task Post_CallerSuppliedAliasHeader_IsKeptAndNoSecondKeyIsAdded()
    {
        var scenario = NewScenario();
        using var services = BuildServices();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/ok/{scenario}") { Content = Json() };
        request.Headers.Add("X-Idempotency-Key", "legacy-7");

        using var response = await Client(services).SendAsync(request);

        var attempt = Assert.Single(server.AttemptsOf(scenario));
        Assert.Null(attempt.IdempotencyKey);
        Assert.Equal("legacy-7", attempt.AliasKey);
        Assert.Equal("legacy-7", response.GetIdempotencyKey());
    }

    [Fact]
    public async Task Post_KeyPresetInRequestOptions_IsSentInHeader()
    {
        var scenario = NewScenario();
        using var services = BuildServices();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/ok/{scenario}") { Content = Json() };
        request.Options.Set(IdempotencyKeyHttpMessageExtensions.RequestOptionsKey, "preset-1");

        using var response = await Client(services).SendAsync(request);

        Assert.Equal("preset-1", Assert.Single(server.AttemptsOf(scenario)).IdempotencyKey);
        Assert.Equal("preset-1", response.GetIdempotencyKey());
    }

    [Fact]
    public async Task Get_NoKeyIsAdded()
    {
        var scenario = NewScenario();
        using var services = BuildServices();

        using var response = await Client(services).GetAsync($"/ok/{scenario}");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var attempt = Assert.Single(server.AttemptsOf(scenario));
        Assert.Equal("GET", attempt.Method);
        Assert.Null(attempt.IdempotencyKey);
        Assert.Null(response.GetIdempotencyKey());
    }

    [Fact]
    public async Task Patch_GetsKeyKeptAcrossRetries()
    {
        var scenario = NewScenario();
        using var services = BuildServices();

        using var response = await Client(services).PatchAsync($"/fail503/{scenario}/1", Json());

        var attempts = server.AttemptsOf(scenario);
        Assert.Equal(2, attempts.Count);
        Assert.All(attempts, a => Assert.Equal("PATCH", a.Method));
        Assert.NotNull(attempts[0].IdempotencyKey);
        Assert.Single(attempts.Select(a => a.IdempotencyKey).Distinct());
    }

    [Fact]
    public async Task Put_NotInMethodSet_GetsNoKey_UnlessConfigured()
    {
        var plain = NewScenario();
        var configured = NewScenario();
        using var defaults = BuildServices();
        using var withPut = BuildServices(o => o.Methods.Add(HttpMethod.Put));

        using var a = await Client(defaults).PutAsync($"/ok/{plain}", Json());
        using var b = await Client(withPut).PutAsync($"/ok/{configured}", Json());

        Assert.Null(Assert.Single(server.AttemptsOf(plain)).IdempotencyKey);
        Assert.NotNull(Assert.Single(server.AttemptsOf(configured)).IdempotencyKey);
    }

    [Fact]
    public async Task Post_InProgress409_ResentAfterRetryAfter_Returns201WithSameKey()
    {
        var scenario = NewScenario();
        var clock = new FakeTimeProvider();
        using var services = BuildServices(o => o.TimeProvider = clock);
        var started = clock.GetUtcNow();

        using var response = await RunWithClock(clock, Client(services).PostAsync($"/inprogress/{scenario}/1", Json()));

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var attempts = server.AttemptsOf(scenario);
        Assert.Equal(2, attempts.Count);
        Assert.NotNull(attempts[0].IdempotencyKey);
        Assert.Equal(attempts[0].IdempotencyKey, attempts[1].IdempotencyKey);
        Assert.Equal(attempts[0].IdempotencyKey, response.GetIdempotencyKey());
        Assert.Equal(Payload, await response.Content.ReadAsStringAsync());
        // The re-send waited on the handler's clock for Retry-After (fake time, not wall-clock duration).
        Assert.True(clock.GetUtcNow() - started >= TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task Post_InProgress409Forever_StopsAfterMaxRetries_ReturnsLast409()
    {
        var scenario = NewScenario();
        var clock = new FakeTimeProvider();
        using var services = BuildServices(o => o.TimeProvider = clock);

        using var response = await RunWithClock(clock, Client(services).PostAsync($"/inprogress/{scenario}/100", Json()));

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        var attempts = server.AttemptsOf(scenario);
        Assert.Equal(1 + IdempotencyKeyHandlerOptions.DefaultMaxInProgressRetries, attempts.Count);
        Assert.Single(attempts.Select(a => a.IdempotencyKey).Distinct());
        Assert.Contains("idempotency-request-in-progress", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Post_InProgress409_MaxInProgressRetriesConfigured_IsRespected()
    {
        var scenario = NewScenario();
        var clock = new FakeTimeProvider();
        using var services = BuildServices(o =>
        {
            o.TimeProvider = clock;
            o.MaxInProgressRetries = 1;
        });

        using var response = await RunWithClock(clock, Client(services).PostAsync($"/inprogress/{scenario}/100", Json()));

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Equal(2, server.AttemptsOf(scenario).Count);
    }

    [Fact]
    public async Task Post_InProgress409_RetriesOff_ReturnsFirst409()
    {
        var scenario = NewScenario();
        using var services = BuildServices(o => o.MaxInProgressRetries = 0);

        using var response = await Client(services).PostAsync($"/inprogress/{scenario}/100", Json());

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Single(server.AttemptsOf(scenario));
    }

    [Fact]
    public async Task Post_KeyReused409_IsNotResent()
    {
        var scenario = NewScenario();
        var clock = new FakeTimeProvider();
        using var services = BuildServices(o => o.TimeProvider = clock);

        using var response = await RunWithClock(clock, Client(services).PostAsync($"/reused/{scenario}", Json()));

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Single(server.AttemptsOf(scenario));
        Assert.Contains("idempotency-key-reused", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Post_KeyReused422_IsNotResent()
    {
        var scenario = NewScenario();
        using var services = BuildServices();

        using var response = await Client(services).PostAsync($"/reused422/{scenario}", Json());

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Single(server.AttemptsOf(scenario));
    }

    [Fact]
    public async Task Post_Plain409WithRetryAfter_IsResentByDefault()
    {
        var scenario = NewScenario();
        var clock = new FakeTimeProvider();
        using var services = BuildServices(o => o.TimeProvider = clock);

        using var response = await RunWithClock(clock, Client(services).PostAsync($"/conflict/{scenario}/1", Json()));

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var attempts = server.AttemptsOf(scenario);
        Assert.Equal(2, attempts.Count);
        Assert.Single(attempts.Select(a => a.IdempotencyKey).Distinct());
    }

    [Fact]
    public async Task Post_Plain409WithRetryAfter_RetryConflictsOff_IsNotResent()
    {
        var scenario = NewScenario();
        using var services = BuildServices(o => o.RetryConflictsWithRetryAfter = false);

        using var response = await Client(services).PostAsync($"/conflict/{scenario}/1", Json());

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Single(server.AttemptsOf(scenario));
    }

    [Fact]
    public async Task Post_Plain409WithoutRetryAfter_IsNotResent()
    {
        var scenario = NewScenario();
        using var services = BuildServices();

        using var response = await Client(services).PostAsync($"/conflict-no-retry-after/{scenario}", Json());

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Single(server.AttemptsOf(scenario));
        Assert.Equal("conflict", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Post_OneShotStreamBody_IsResentIntactOnEveryAttempt()
    {
        var scenario = NewScenario();
        var clock = new FakeTimeProvider();
        using var services = BuildServices(o => o.TimeProvider = clock);
        var body = "amount=100&note=" + new string('x', 20_000);
        using var content = new StreamContent(new OneShotStream(Encoding.UTF8.GetBytes(body)));

        // 503, dropped connection, 409 in progress, then 201.
        using var response = await RunWithClock(clock, Client(services).PostAsync($"/mixed/{scenario}", content));

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var attempts = server.AttemptsOf(scenario);
        Assert.Equal(4, attempts.Count);
        Assert.All(attempts, a => Assert.Equal(body, a.Body));
        Assert.Single(attempts.Select(a => a.IdempotencyKey).Distinct());
    }

    [Fact]
    public async Task Post_QuotedForm_SendsStructuredFieldString()
    {
        var scenario = NewScenario();
        using var services = BuildServices(o => o.UseQuotedForm = true);

        using var response = await Client(services).PostAsync($"/ok/{scenario}", Json());

        var sent = Assert.Single(server.AttemptsOf(scenario)).IdempotencyKey;
        var key = response.GetIdempotencyKey();
        Assert.NotNull(key);
        Assert.Equal($"\"{key}\"", sent);
    }

    [Fact]
    public async Task Post_CustomHeaderNameAndKeyFactory_AreUsed()
    {
        var scenario = NewScenario();
        using var services = BuildServices(o =>
        {
            o.HeaderName = "X-Idempotency-Key";
            o.KeyFactory = _ => Guid.CreateVersion7().ToString();
        });

        using var response = await Client(services).PostAsync($"/ok/{scenario}", Json());

        var attempt = Assert.Single(server.AttemptsOf(scenario));
        Assert.Null(attempt.IdempotencyKey);
        Assert.True(Guid.TryParseExact(attempt.AliasKey, "D", out var guid));
        Assert.Equal(7, guid.Version);
    }

    [Fact]
    public async Task Post_KeyFactoryReturnsInvalidKey_ThrowsWithoutSending()
    {
        var scenario = NewScenario();
        using var services = BuildServices(o => o.KeyFactory = _ => "has space");

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => Client(services).PostAsync($"/ok/{scenario}", Json()));

        Assert.Contains("KeyFactory", error.Message, StringComparison.Ordinal);
        Assert.Empty(server.AttemptsOf(scenario));
    }

    [Fact]
    public void CreateClient_InvalidOptions_ThrowsWithMessageSayingWhatToChange()
    {
        using var services = BuildServices(o =>
        {
            o.HeaderName = "Bad Header";
            o.MaxInProgressRetries = -1;
            o.MaxRetryAfter = TimeSpan.FromHours(1);
            o.Methods.Clear();
        });

        var error = Assert.Throws<OptionsValidationException>(() => Client(services));

        Assert.Contains("HeaderName", error.Message, StringComparison.Ordinal);
        Assert.Contains("MaxInProgressRetries", error.Message, StringComparison.Ordinal);
        Assert.Contains("MaxRetryAfter", error.Message, StringComparison.Ordinal);
        Assert.Contains("Methods", error.Message, StringComparison.Ordinal);
    }

    private static string NewScenario() => Guid.NewGuid().ToString("N");

    private static StringContent Json() => new(Payload, Encoding.UTF8, "application/json");

    private static HttpClient Client(ServiceProvider services) =>
        services.GetRequiredService<IHttpClientFactory>().CreateClient("x");

    private ServiceProvider BuildServices(Action<IdempotencyKeyHandlerOptions>? configure = null, bool reversed = false)
    {
        var services = new ServiceCollection();
        var builder = services.AddHttpClient("x", c => c.BaseAddress = server.BaseAddress);
        if (reversed)
        {
            builder.AddStandardResilienceHandler(FastRetries);
            builder.AddIdempotencyKeys(configure);
        }
        else
        {
            builder.AddIdempotencyKeys(configure).AddStandardResilienceHandler(FastRetries);
        }

        return services.BuildServiceProvider();
    }

    private static void FastRetries(HttpStandardResilienceOptions options)
    {
        options.Retry.MaxRetryAttempts = 4;
        options.Retry.Delay = TimeSpan.FromMilliseconds(10);
        options.Retry.BackoffType = DelayBackoffType.Constant;
        options.Retry.UseJitter = false;
    }

    /// <summary>Moves the handler's fake clock forward until the send completes, so Retry-After waits pass instantly.</summary>
    private static async Task<T> RunWithClock<T>(FakeTimeProvider clock, Task<T> send)
    {
        while (!send.IsCompleted)
        {
            clock.Advance(TimeSpan.FromMilliseconds(250));
            await Task.WhenAny(send, Task.Delay(5));
        }

        return await send;
    }

    /// <summary>A body stream that can be read once and cannot seek, like a network or file stream.</summary>
    private sealed class OneShotStream(byte[] data) : Stream
    {
        private readonly MemoryStream _inner = new(data);

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
