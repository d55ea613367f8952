using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Oncely;

namespace Payments.Tests;

/// <summary>
/// Issue 19, item 4: a payment whose <c>reference</c> carries a test card number, then a reuse of its key with another
/// card number, leaves neither number in any log line of the sample (every category, every level), nor in the
/// key-reuse audit the operator API shows. Before the value-based masking, event 1003 wrote the refused payload whole.
/// </summary>
public sealed class CardNumberLogTests
{
    [Fact]
    public async Task Payment_ReferenceWithCardNumber_ThenKeyReuse_NoCardNumberInAnyLogLineOrAudit()
    {
        var logs = new CapturingProvider();
        await using var host = await PaymentsHost.StartAsync(services: services =>
        {
            services.AddSingleton<ILoggerProvider>(logs);
            services.PostConfigure<LoggerFilterOptions>(o =>
            {
                o.Rules.Clear();
                o.MinLevel = LogLevel.Trace;
            });
        });
        using var client = host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        // No digits: the positive control below looks for the key in the log, where a run that looks like a card number
        // (a random id sometimes holds one) would be masked.
        var key = $"card-log-{string.Concat(Guid.NewGuid().ToString("N").Select(c => (char)(char.IsAsciiDigit(c) ? 'g' + (c - '0') : c)))}";

        using var paid = await PaymentsHost.PostAsync(client, "/payments", new { from = alice.Id, to = bob.Id, amount = 100, currency = "EUR", reference = "card 4242 4242 4242 4242 order 4242424242424241" }, key);
        Assert.Equal(HttpStatusCode.Created, paid.StatusCode);
        using var reused = await PaymentsHost.PostAsync(client, "/payments", new { from = alice.Id, to = bob.Id, amount = 200, currency = "EUR", reference = "amex 3782-822463-10005 / 4111111111111111" }, key);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, reused.StatusCode);

        using var operatorClient = host.Client(PaymentsHost.Operator);
        var audit = await operatorClient.GetStringAsync("/admin/idempotency/audit");
        var payload = Assert.Single(JsonDocument.Parse(audit).RootElement.GetProperty("entries").EnumerateArray()).GetProperty("payload").GetString()!;

        var lines = logs.Lines.ToArray();
        var keyReused = Assert.Single(lines, l => l.EventId == IdempotencyEventIds.KeyReused);
        Assert.Contains("amex ****-******-*0005 / ************1111", keyReused.Text, StringComparison.Ordinal); // the payload is there, masked
        Assert.Contains("amex ****-******-*0005 / ************1111", payload, StringComparison.Ordinal);
        foreach (var card in new[] { "4242 4242 4242 4242", "4242424242424242", "3782-822463-10005", "378282246310005", "4111111111111111" })
        {
            Assert.DoesNotContain(lines, l => l.Text.Contains(card, StringComparison.Ordinal));
            Assert.DoesNotContain(card, audit, StringComparison.Ordinal);
        }

        Assert.Contains(lines, l => l.Text.Contains(key, StringComparison.Ordinal)); // positive control: the capture sees Oncely's debug lines
    }

    private sealed class CapturingProvider : ILoggerProvider
    {
        public ConcurrentQueue<(int EventId, string Text)> Lines { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(CapturingProvider owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                var values = state is IEnumerable<KeyValuePair<string, object?>> pairs ? string.Join(" | ", pairs.Select(p => $"{p.Key}={p.Value}")) : string.Empty;
                owner.Lines.Enqueue((eventId.Id, $"{category} {formatter(state, exception)} | {values} | {exception}"));
            }
        }
    }
}
