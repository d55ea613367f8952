using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Oncely.Storage.Specification;
using Oncely.Testing;

namespace Oncely.AspNetCore.Tests;

/// <summary>
/// Issue 19: card numbers in request bodies, keys and tenants, in odd places, driven through every path (execution,
/// replay, key reuse with its audit, a handler's 422, a store outage, the operator API) on a real pipeline; every log
/// line (formatted text, state values, exceptions), span (names, tags, events) and metric tag the host produced is
/// captured, and none holds a card number. Positive controls show each capture works.
/// </summary>
public sealed class CardNumberRedactionTests
{
    private const string Admin = "/admin/idempotency";

    // Test card numbers, each as it is sent, and the non-Luhn control that must be left alone.
    private static readonly string[] Cards = ["4242424242424242", "4242 4242 4242 4242", "4111 1111 1111 1111", "3782-822463-10005", "6222000000000000004", "5555555555554444", "4000056655665556"];
    private const string NotACard = "4242424242424241";

    private static readonly string FirstBody = """
        {"amount":100,"reference":"ref 4242 4242 4242 4242 x","note":"4111 1111 1111 1111",
         "lines":[{"memo":["a","amex 3782-822463-10005"]},[6222000000000000004]],"order":"4242424242424241"}
        """;

    private static readonly string ReusedBody = """
        {"amount":200,"reference":"ref 4242 4242 4242 4242 x","note":"4111 1111 1111 1111","asNumber":4242424242424242,
         "lines":[{"memo":["b","amex 3782-822463-10005"]},[6222000000000000004]],"order":"4242424242424241"}
        """;

    [Fact]
    public async Task EveryPath_CardNumbersInBodiesKeysAndTenants_NeverInLogsTracesMetricsAuditOrOperatorApi()
    {
        using var capture = new Capture();
        await using var host = await Host.StartAsync(capture);

        // Row 5 then row 6: a payment whose body carries card numbers, and its replay.
        var first = await host.PostAsync("/payments", "pay-1", FirstBody);
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        var replay = await host.PostAsync("/payments", "pay-1", FirstBody);
        Assert.Equal(HttpStatusCode.Created, replay.StatusCode);
        Assert.True(replay.Headers.Contains("Idempotent-Replayed"));

        // Row 8: the key reused with another payload carrying card numbers, also as a JSON number: 422 and an audit entry.
        var reused = await host.PostAsync("/payments", "pay-1", ReusedBody);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, reused.StatusCode);

        // The handler's own 422 (validation), stored and replayed.
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await host.PostAsync("/validated", "val-1", FirstBody)).StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await host.PostAsync("/validated", "val-1", FirstBody)).StatusCode);

        // Keys and a tenant that are card numbers: executed, replayed, reused.
        const string cardTenant = "tenant-4000056655665556";
        Assert.Equal(HttpStatusCode.Created, (await host.PostAsync("/payments", "key-4242-4242-4242-4242", FirstBody, cardTenant)).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await host.PostAsync("/payments", "key-4242-4242-4242-4242", FirstBody, cardTenant)).StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await host.PostAsync("/payments", "key-4242-4242-4242-4242", ReusedBody, cardTenant)).StatusCode);

        // Row 13: the store is down, and its error quotes the key (as a Redis timeout does).
        host.Store.Down = true;
        var outage = await host.PostAsync("/payments", "key-5555555555554444", FirstBody);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, outage.StatusCode);
        host.Store.Down = false;

        // The operator API: records and the audit (with the refused payloads) of the tenant without card numbers.
        var records = await host.GetAsync($"{Admin}/records?tenant=tenant-a");
        Assert.Equal(HttpStatusCode.OK, records.StatusCode);
        var audit = await host.GetAsync($"{Admin}/audit?tenant=tenant-a");
        Assert.Equal(HttpStatusCode.OK, audit.StatusCode);
        var auditText = await audit.Content.ReadAsStringAsync();
        var recordsText = await records.Content.ReadAsStringAsync();
        var entry = Assert.Single(JsonDocument.Parse(auditText).RootElement.GetProperty("entries").EnumerateArray());
        var payload = entry.GetProperty("payload").GetString()!;
        using (var kept = JsonDocument.Parse(payload))
        {
            Assert.Equal("ref **** **** **** 4242 x", kept.RootElement.GetProperty("reference").GetString());
            Assert.Equal("************4242", kept.RootElement.GetProperty("asNumber").GetString());
            Assert.Equal(NotACard, kept.RootElement.GetProperty("order").GetString()); // positive control: the audit keeps the payload
        }

        // What the store itself holds of the audit (before the operator API's own masking).
        var stored = await ((IIdempotencyStoreAdministration)host.Store).ListAuditAsync(new KeyReuseAuditQuery { Limit = 10 }, CancellationToken.None);
        Assert.Equal(2, stored.Entries.Count);

        var logs = capture.LogText();
        var spans = capture.SpanText();
        var tags = capture.MetricText();
        Assert.Multiple(
            () => AssertNoCardNumber("operator API records", recordsText),
            () => AssertNoCardNumber("operator API audit", auditText),
            () => AssertNoCardNumber("stored audit", string.Join('\n', stored.Entries.Select(e => $"{e.Id} {e.Payload}"))),
            () => AssertNoCardNumber("logs", logs),
            () => AssertNoCardNumber("traces", spans),
            () => AssertNoCardNumber("metrics", tags),
            // Positive controls: each capture saw this test's traffic.
            () => Assert.Contains(NotACard, logs, StringComparison.Ordinal), // event 1003 carries the redacted payload
            () => Assert.Contains("key-****-****-****-4242", logs, StringComparison.Ordinal), // the key, masked, still identifies the record
            () => Assert.Contains("tenant-************5556", logs, StringComparison.Ordinal),
            () => Assert.Contains("connection lost while reserving key-************4444", logs, StringComparison.Ordinal), // the store's error, masked
            () => Assert.Contains("oncely.outcome=key_reused", spans, StringComparison.Ordinal),
            () => Assert.Contains("oncely.outcome=store_unavailable", tags, StringComparison.Ordinal),
            () => Assert.Contains("oncely.operation=POST /payments", tags, StringComparison.Ordinal),
            () => Assert.Contains("pay-1", recordsText, StringComparison.Ordinal));
    }

    [Fact]
    public async Task RefusedBeforeTheStore_PathWithCardNumber_OncelyLogsMaskIt()
    {
        using var capture = new Capture();
        await using var host = await Host.StartAsync(capture);

        var refused = await host.PostAsync("/cards/4111111111111111/payments", key: null, FirstBody);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);

        var oncely = capture.LogText(category => category.StartsWith("Oncely", StringComparison.Ordinal));
        Assert.Contains("/cards/************1111/payments", oncely, StringComparison.Ordinal);
        AssertNoCardNumber("Oncely's logs", oncely);
    }

    [Fact]
    public async Task KeyReuse_PayloadRedactorOfTheApplicationReturnsRawPayload_CardNumbersStillMaskedInAuditAndLog()
    {
        await using var app = await TestApp.StartAsync(maintenance: o => o.PayloadRedactor = (_, payload) => Encoding.UTF8.GetString(payload.Span));

        Assert.Equal(HttpStatusCode.Created, (await app.PostAsync("/payments", "raw-1", """{"amount":1,"memo":"x"}""")).StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await app.PostAsync("/payments", "raw-1", """{"amount":2,"memo":"4111 1111 1111 1111"}""")).StatusCode);

        var entry = Assert.Single((await ((IIdempotencyStoreAdministration)app.Store).ListAuditAsync(new KeyReuseAuditQuery { Limit = 10 }, CancellationToken.None)).Entries);
        Assert.Equal("""{"amount":2,"memo":"**** **** **** 1111"}""", entry.Payload);
        var logged = Assert.Single(app.Logs.Entries, e => e.Id.Id == IdempotencyEventIds.KeyReused);
        Assert.Contains("**** **** **** 1111", logged.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("4111 1111 1111 1111", logged.Message, StringComparison.Ordinal);
    }

    private static void AssertNoCardNumber(string where, string text)
    {
        var digits = new string([.. text.Where(char.IsAsciiDigit)]);
        foreach (var card in Cards)
        {
            Assert.False(text.Contains(card, StringComparison.Ordinal), $"{where} holds the card number {card}:\n{text}");
            var cardDigits = new string([.. card.Where(char.IsAsciiDigit)]);
            Assert.False(digits.Contains(cardDigits, StringComparison.Ordinal) && text.Contains(cardDigits, StringComparison.Ordinal), $"{where} holds the card number {cardDigits}");
        }

        Assert.False(PrimaryAccountNumberRedactor.ContainsPrimaryAccountNumber(text.Replace(NotACard, "[control]", StringComparison.Ordinal)), $"{where} holds a card number:\n{text}");
    }

    /// <summary>A real in-memory store whose reservations fail, quoting the key, while <see cref="Down"/>.</summary>
    private sealed class OutageStore(InMemoryIdempotencyStore inner) : DelegatingIdempotencyStore(inner), IIdempotencyAuditStore, IIdempotencyStoreAdministration
    {
        public bool Down { get; set; }

        public override ValueTask<ReservationResult> TryReserveAsync(IdempotencyRecordId id, string fingerprint, TimeSpan lease, TimeSpan expiration, CancellationToken cancellationToken)
            => Down
                ? throw new IdempotencyStoreUnavailableException($"connection lost while reserving {id.Key}", new IOException($"socket closed ({id.Key})"))
                : base.TryReserveAsync(id, fingerprint, lease, expiration, cancellationToken);

        public ValueTask AppendAsync(KeyReuseAuditEntry entry, CancellationToken cancellationToken) => inner.AppendAsync(entry, cancellationToken);

        public ValueTask<int> PurgeAuditAsync(TimeSpan retention, int batchSize, CancellationToken cancellationToken) => inner.PurgeAuditAsync(retention, batchSize, cancellationToken);

        public ValueTask<IdempotencyRecordPage> ListRecordsAsync(IdempotencyRecordQuery query, CancellationToken cancellationToken) => inner.ListRecordsAsync(query, cancellationToken);

        public ValueTask<IReadOnlyList<IdempotencyRecordSummary>> FindByKeyAsync(string tenant, string key, CancellationToken cancellationToken) => inner.FindByKeyAsync(tenant, key, cancellationToken);

        public ValueTask<KeyReuseAuditPage> ListAuditAsync(KeyReuseAuditQuery query, CancellationToken cancellationToken) => inner.ListAuditAsync(query, cancellationToken);
    }

    private sealed class Host : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly HttpClient _client;

        private Host(WebApplication app, OutageStore store)
        {
            _app = app;
            Store = store;
            _client = app.GetTestClient();
        }

        public OutageStore Store { get; }

        public static async Task<Host> StartAsync(Capture capture)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseTestServer();
            builder.Logging.ClearProviders();
            builder.Logging.AddProvider(capture);
            builder.Logging.SetMinimumLevel(LogLevel.Trace);
            builder.Services.AddAuthentication(OperatorApiTestAuth.SchemeName).AddScheme<AuthenticationSchemeOptions, OperatorApiTestAuth>(OperatorApiTestAuth.SchemeName, null);
            builder.Services.AddAuthorizationBuilder().AddPolicy("operator", p => p.RequireRole("operator"));
            var store = new OutageStore(new InMemoryIdempotencyStore());
            builder.Services.AddIdempotency().UseStore(_ => store);
            var app = builder.Build();
            app.UseAuthentication();
            app.UseAuthorization();
            app.UseIdempotency();
            app.MapPost("/payments", async (HttpContext context) =>
            {
                using var body = await JsonDocument.ParseAsync(context.Request.Body);
                return Results.Created("/payments/1", new { amount = body.RootElement.GetProperty("amount").GetInt64() });
            }).RequireIdempotencyKey();
            app.MapPost("/validated", () => Results.Problem(title: "The reference is not accepted", statusCode: 422)).RequireIdempotencyKey();
            app.MapPost("/cards/{card}/payments", (string card) => Results.Created("/x", new { })).RequireIdempotencyKey();
            app.MapIdempotencyAdmin(Admin).RequireAuthorization("operator");
            await app.StartAsync();
            return new Host(app, store);
        }

        public Task<HttpResponseMessage> PostAsync(string path, string? key, string json, string tenant = "tenant-a")
        {
            var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
            if (key is not null)
            {
                request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
            }

            request.Headers.Authorization = new AuthenticationHeaderValue(OperatorApiTestAuth.SchemeName, tenant);
            return _client.SendAsync(request);
        }

        public Task<HttpResponseMessage> GetAsync(string path)
        {
            var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.Authorization = new AuthenticationHeaderValue(OperatorApiTestAuth.SchemeName, "operator:alice");
            return _client.SendAsync(request);
        }

        public async ValueTask DisposeAsync()
        {
            _client.Dispose();
            await _app.DisposeAsync();
        }
    }

    /// <summary>
    /// Everything the host writes: every log entry of every category (formatted message, each state value, the exception's
    /// full text), every span of every source (names, tags, events, status) and every metric measurement's tags.
    /// </summary>
    private sealed class Capture : ILoggerProvider
    {
        private readonly ConcurrentQueue<(string Category, string Text)> _logs = new();
        private readonly ConcurrentQueue<string> _spans = new();
        private readonly ConcurrentQueue<string> _metrics = new();
        private readonly ActivityListener _activities;
        private readonly MeterListener _meters;

        public Capture()
        {
            _activities = new ActivityListener
            {
                ShouldListenTo = _ => true,
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
                ActivityStopped = activity =>
                {
                    var text = new StringBuilder($"{activity.Source.Name} {activity.OperationName} {activity.DisplayName} {activity.StatusDescription}");
                    foreach (var (key, value) in activity.TagObjects)
                    {
                        text.Append(' ').Append(key).Append('=').Append(value);
                    }

                    foreach (var e in activity.Events)
                    {
                        text.Append(" event ").Append(e.Name);
                        foreach (var (key, value) in e.Tags)
                        {
                            text.Append(' ').Append(key).Append('=').Append(value);
                        }
                    }

                    foreach (var (key, value) in activity.Baggage)
                    {
                        text.Append(" baggage ").Append(key).Append('=').Append(value);
                    }

                    _spans.Enqueue(text.ToString());
                },
            };
            ActivitySource.AddActivityListener(_activities);
            _meters = new MeterListener { InstrumentPublished = (instrument, listener) => listener.EnableMeasurementEvents(instrument) };
            _meters.SetMeasurementEventCallback<long>((instrument, _, tags, _) => Record(instrument, tags));
            _meters.SetMeasurementEventCallback<int>((instrument, _, tags, _) => Record(instrument, tags));
            _meters.SetMeasurementEventCallback<double>((instrument, _, tags, _) => Record(instrument, tags));
            _meters.Start();
        }

        public string LogText(Func<string, bool>? category = null)
            => string.Join('\n', _logs.Where(l => category?.Invoke(l.Category) ?? true).Select(l => l.Text));

        public string SpanText() => string.Join('\n', _spans);

        public string MetricText()
        {
            _meters.RecordObservableInstruments();
            return string.Join('\n', _metrics);
        }

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
            _activities.Dispose();
            _meters.Dispose();
        }

        private void Record(Instrument instrument, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var text = new StringBuilder(instrument.Meter.Name).Append(' ').Append(instrument.Name);
            foreach (var (key, value) in tags)
            {
                text.Append(' ').Append(key).Append('=').Append(value);
            }

            _metrics.Enqueue(text.ToString());
        }

        private sealed class Logger(Capture owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull
            {
                owner._logs.Enqueue((category, "scope " + state));
                return null;
            }

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                var text = new StringBuilder($"{category} [{eventId.Id}] {formatter(state, exception)}");
                if (state is IEnumerable<KeyValuePair<string, object?>> values)
                {
                    foreach (var (key, value) in values)
                    {
                        text.Append(" | ").Append(key).Append('=').Append(value);
                    }
                }

                if (exception is not null)
                {
                    text.Append(" | exception ").Append(exception);
                }

                owner._logs.Enqueue((category, text.ToString()));
            }
        }
    }
}
