using System.Globalization;
using System.Text;
using Payments.Ledger;
using Payments.Webhooks;
using StandardWebhooks;

namespace Payments.Demo;

/// <summary>
/// The demo's webhook rows: a simulated card provider delivers signed settlement events at least once (a redelivery
/// after every answer it did not receive, duplicates sent at the same time) and retries any non-2xx answer, as real
/// providers do. Measured from the <c>settlements</c> table: how many times each settled payment was credited.
/// </summary>
internal static class SettlementWebhookDemo
{
    /// <summary>The demo provider's signing secret (also in appsettings.json), passed to the service as configuration.</summary>
    public const string Secret = "whsec_KWiWa/1lu1ud7XCItj0VAOwnQsQvMcMLSZi/V0+1RQk=";

    private const int LostCount = 3;
    private const int LostAmount = 700;
    private const int Duplicates = 4;
    private const int DuplicateAmount = 500;

    public static readonly IReadOnlyList<(string Name, long Expected, long ExpectedMoved)> Scenarios =
    [
        ("5. webhook redelivered after lost answer x3", LostCount, LostCount * LostAmount),
        ($"6. webhook delivered x{Duplicates} in parallel", 1, DuplicateAmount),
    ];

    /// <summary>The configuration argument that gives the service the provider's secret.</summary>
    public static string SecretArgument => $"--{SettlementWebhook.Section}:Senders:{SettlementWebhook.Sender}:Secrets:0={Secret}";

    /// <summary>Runs both webhook scenarios against <paramref name="address"/>, crediting <paramref name="account"/>.</summary>
    public static async Task<List<(string Name, ScenarioMeasure Measure, List<string> Violations)>> RunAsync(string address, string account, LedgerRepository ledger, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromSeconds(30) };
        var provider = new SimulatedCardProvider(http, Secret);
        var runs = new List<(string Name, List<Delivery> Deliveries)>();

        // 5: each event's answer is lost on the way back twice (the provider times out and redelivers), then received.
        var lost = new List<Delivery>();
        for (var i = 0; i < LostCount; i++)
        {
            var settled = SettledEvent($"card_pay_lost_{i}", account, LostAmount);
            var id = $"msg_lost_{i}_{Guid.NewGuid():N}";
            for (var attempt = 0; attempt < 3; attempt++)
            {
                lost.Add(await provider.DeliverAsync(id, settled, answerLost: attempt < 2, cancellationToken));
            }
        }

        runs.Add((Scenarios[0].Name, lost));

        // 6: one event handed to four delivery workers at once (an at-least-once queue inside the provider).
        var duplicated = SettledEvent("card_pay_dup", account, DuplicateAmount);
        var duplicateId = $"msg_dup_{Guid.NewGuid():N}";
        runs.Add((Scenarios[1].Name, [.. await Task.WhenAll(Enumerable.Range(0, Duplicates).Select(_ => provider.DeliverAsync(duplicateId, duplicated, answerLost: false, cancellationToken)))]));

        var credited = await CreditsByPaymentAsync(ledger, cancellationToken);
        var results = new List<(string, ScenarioMeasure, List<string>)>();
        foreach (var (name, deliveries) in runs)
        {
            long rows = 0, moved = 0, extra = 0;
            var violations = new List<string>();
            foreach (var payment in deliveries.Select(d => d.Payment).Distinct(StringComparer.Ordinal))
            {
                var (count, amount) = credited.TryGetValue(payment, out var c) ? c : (0, 0);
                rows += count;
                moved += amount;
                extra += Math.Max(0, count - 1);
                if (count != 1)
                {
                    violations.Add($"{name}: '{payment}' was credited {count} times");
                }
            }

            foreach (var delivery in deliveries.Where(d => !d.AnswerLost && !d.Final.StartsWith('2')))
            {
                violations.Add($"{name}: the provider's delivery of '{delivery.Payment}' ended with {delivery.Final}, not 2xx");
            }

            var answers = deliveries.SelectMany(d => d.Answers)
                .GroupBy(a => a.Outcome, StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
            results.Add((name, new ScenarioMeasure(rows, moved, extra, answers, deliveries.Sum(d => d.Answers.Count(a => a.Replayed))), violations));
        }

        return results;
    }

    private static string SettledEvent(string payment, string account, long amount)
        => $$$"""{"type":"payment.settled","timestamp":"2026-01-01T00:00:00Z","data":{"payment":"{{{payment}}}","account":"{{{account}}}","amount":{{{amount}}},"currency":"EUR"}}""";

    // Credits per provider payment id: (rows, amount).
    private static async Task<Dictionary<string, (long Count, long Amount)>> CreditsByPaymentAsync(LedgerRepository ledger, CancellationToken cancellationToken)
    {
        await using var connection = await ledger.Dialect.OpenAsync(cancellationToken);
        await using var command = Sql.Command(connection, null, "SELECT provider_payment, COUNT(*), SUM(amount) FROM settlements GROUP BY provider_payment");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var credited = new Dictionary<string, (long, long)>(StringComparer.Ordinal);
        while (await reader.ReadAsync(cancellationToken))
        {
            credited[reader.GetString(0)] = (Convert.ToInt64(reader.GetValue(1), CultureInfo.InvariantCulture), Convert.ToInt64(reader.GetValue(2), CultureInfo.InvariantCulture));
        }

        return credited;
    }

    /// <summary>One delivery of one event, with every attempt's answer.</summary>
    private sealed record Delivery(string Payment, bool AnswerLost, List<(string Outcome, bool Replayed)> Answers)
    {
        public string Final => Answers[^1].Outcome;
    }

    /// <summary>
    /// Signs every attempt afresh (its own timestamp; the <c>webhook-id</c> stays the event's) with the StandardWebhooks
    /// package, and retries a non-2xx answer or a failed send up to 10 times, 20 ms apart.
    /// </summary>
    private sealed class SimulatedCardProvider(HttpClient http, string secret)
    {
        private readonly StandardWebhook _signer = new(secret);

        public async Task<Delivery> DeliverAsync(string id, string payload, bool answerLost, CancellationToken cancellationToken)
        {
            var payment = payload[(payload.IndexOf("\"payment\":\"", StringComparison.Ordinal) + 11)..].Split('"')[0];
            var answers = new List<(string, bool)>();
            for (var attempt = 0; attempt < 10; attempt++)
            {
                var now = TimeProvider.System.GetUtcNow();
                using var request = new HttpRequestMessage(HttpMethod.Post, SettlementWebhook.Path) { Content = new StringContent(payload, Encoding.UTF8, "application/json") };
                request.Headers.Add("webhook-id", id);
                request.Headers.Add("webhook-timestamp", now.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture));
                request.Headers.Add("webhook-signature", _signer.Sign(id, now, payload));
                string outcome;
                var replayed = false;
                try
                {
                    using var response = await http.SendAsync(request, cancellationToken);
                    outcome = ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture);
                    replayed = response.Headers.Contains("Idempotent-Replayed");
                }
                catch (HttpRequestException e)
                {
                    outcome = e.GetType().Name;
                }

                if (answerLost)
                {
                    // The answer never reached the provider: it counts the attempt as timed out and will deliver again.
                    answers.Add(("lost", false));
                    return new Delivery(payment, true, answers);
                }

                answers.Add((outcome, replayed));
                if (outcome.StartsWith('2'))
                {
                    break;
                }

                await Task.Delay(20, cancellationToken);
            }

            return new Delivery(payment, false, answers);
        }
    }
}
