using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Microsoft.Data.Sqlite;
using Oncely.Http;
using Payments.Ledger;
using Polly;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace Payments.Demo;

/// <summary>What one mode (with or without idempotency) measured for one scenario.</summary>
/// <param name="Charges">Rows the scenario created in the payments table.</param>
/// <param name="Moved">The sum of those rows' amounts.</param>
/// <param name="Extra">Charges beyond what the client asked for (double charges).</param>
/// <param name="Answers">The answers the client saw: status code (or the exception's name) and how often.</param>
/// <param name="Replayed">How many of those answers carried <c>Idempotent-Replayed: true</c>.</param>
/// <param name="Noun">What a row of the scenario is: <c>charge</c> (payments) or <c>settlement</c> (webhook credits).</param>
public sealed record ScenarioMeasure(long Charges, long Moved, long Extra, IReadOnlyDictionary<string, int> Answers, int Replayed, string Noun = "charge")
{
    public override string ToString()
    {
        var answers = string.Join(" ", Answers.OrderBy(a => a.Key, StringComparer.Ordinal).Select(a => $"{a.Key}x{a.Value}"));
        var extra = Extra > 0 ? $" ({Extra} extra)" : string.Empty;
        var replayed = Replayed > 0 ? $", {Replayed} replayed" : string.Empty;
        return string.Create(CultureInfo.InvariantCulture, $"{Charges} {Noun}{(Charges == 1 ? "" : "s")}{extra}, {Moved} moved; answers {answers}{replayed}");
    }
}

public sealed record ScenarioResult(string Name, long ExpectedCharges, long ExpectedMoved, ScenarioMeasure Without, ScenarioMeasure With, string Noun = "charge");

/// <summary>The demo's outcome. <see cref="Failures"/> lists what went wrong with idempotency on (the exit code is non-zero then).</summary>
public sealed record DemoReport(IReadOnlyList<ScenarioResult> Scenarios, LedgerCheck WithoutLedger, LedgerCheck WithLedger, IReadOnlyList<string> Failures, string Table)
{
    public bool Succeeded => Failures.Count == 0;
}

/// <summary>
/// <c>dotnet run --project samples/Payments -- demo</c>: starts the service in-process on a free loopback port with a fresh
/// temp SQLite database, and drives a retry storm through a real <see cref="HttpClient"/> (Oncely.Http's keys plus the
/// standard resilience handler), first with the service built without idempotency, then with it. Everything printed is
/// measured from the database and the client's answers.
/// </summary>
public static class RetryStormDemo
{
    private const string ApiKey = "sk_test_tenant_a";

    public static async Task<DemoReport> RunAsync(TextWriter output, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(output);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(3));
        await output.WriteLineAsync("Payments retry storm: each scenario runs against the service without idempotency, then with it (fresh SQLite database each time).");
        var without = await RunModeAsync(idempotency: false, output, timeout.Token);
        var with = await RunModeAsync(idempotency: true, output, timeout.Token);

        var scenarios = Scenario.All.Select(s => new ScenarioResult(
            s.Name,
            s.ExpectedCharges,
            s.ExpectedMoved,
            without.Measures[s.Name],
            with.Measures[s.Name])).ToList();
        scenarios.AddRange(SettlementWebhookDemo.Scenarios.Select(s => new ScenarioResult(s.Name, s.Expected, s.ExpectedMoved, without.Measures[s.Name], with.Measures[s.Name], "settlement")));
        scenarios.Add(new ScenarioResult(PayoutDemo.Name, PayoutDemo.ExpectedCharges, PayoutDemo.ExpectedMoved, without.Measures[PayoutDemo.Name], with.Measures[PayoutDemo.Name], "payout"));
        var failures = new List<string>(with.Violations);
        if (!with.Ledger.IsBalanced)
        {
            failures.Add($"with idempotency the ledger is {with.Ledger}");
        }

        if (!without.Ledger.IsBalanced)
        {
            failures.Add($"without idempotency the ledger is {without.Ledger}");
        }

        var table = Render(scenarios, without.Ledger, with.Ledger);
        await output.WriteLineAsync();
        await output.WriteAsync(table);
        await output.WriteLineAsync();
        var doubles = scenarios.Sum(s => s.Without.Extra);
        await output.WriteLineAsync($"Without idempotency: {doubles} extra charge(s), settlement(s) or payout(s), {scenarios.Sum(s => s.Without.Moved - s.ExpectedMoved)} moved too much; the ledger still balances, because every double charge is a perfectly balanced payment.");
        if (failures.Count == 0)
        {
            await output.WriteLineAsync("With idempotency: every payment and payout made and every settlement credited exactly once, every answer matches the database. OK.");
        }
        else
        {
            await output.WriteLineAsync("With idempotency: FAILED");
            foreach (var failure in failures)
            {
                await output.WriteLineAsync("  - " + failure);
            }
        }

        return new DemoReport(scenarios, without.Ledger, with.Ledger, failures, table);
    }

    private static async Task<ModeRun> RunModeAsync(bool idempotency, TextWriter output, CancellationToken cancellationToken)
    {
        var directory = Path.Combine(Path.GetTempPath(), "oncely-payments-demo-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(directory);
        var database = Path.Combine(directory, "payments.db");
        try
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            var faults = new DemoFaults();
            await using var app = PaymentsApp.Build(
                [
                    "--urls=http://127.0.0.1:0",
                    "--environment=Production",
                    $"--contentRoot={directory}",
                    "--Payments:Database=Sqlite",
                    $"--ConnectionStrings:Payments=Data Source={database}",
                    $"--Payments:Idempotency={idempotency}",
                    $"--Payments:ApiKeys:{ApiKey}=tenant-a",
                    SettlementWebhookDemo.SecretArgument,
                ],
                builder =>
                {
                    builder.Logging.ClearProviders();
                    builder.Services.AddSingleton(faults); // the demo's fault hook; the real server never registers it
                });
            await app.StartAsync(cancellationToken);
            var address = app.Urls.First();
            await output.WriteLineAsync($"  {(idempotency ? "with" : "without")} idempotency: serving on {address}, database {database}");

            var loss = new ResponseLoss();
            var services = new ServiceCollection();
            services.AddSingleton(loss);
            services.AddHttpClient("payments", client =>
                {
                    client.BaseAddress = new Uri(address);
                    client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
                })
                .AddIdempotencyKeys()
                .AddStandardResilienceHandler(options =>
                {
                    options.Retry.MaxRetryAttempts = 4;
                    options.Retry.Delay = TimeSpan.FromMilliseconds(20);
                    options.Retry.BackoffType = DelayBackoffType.Constant;
                    options.Retry.UseJitter = false;
                    options.CircuitBreaker.MinimumThroughput = 1000; // a storm against one endpoint is the point here
                });
            services.AddHttpClient("payments").AddHttpMessageHandler(sp => new LoseFirstResponseHandler(sp.GetRequiredService<ResponseLoss>()));
            await using var provider = services.BuildServiceProvider();
            var http = provider.GetRequiredService<IHttpClientFactory>().CreateClient("payments");

            var (alice, bob) = await SetUpAccountsAsync(http, cancellationToken);
            var logical = new List<LogicalRequest>();
            foreach (var scenario in Scenario.All)
            {
                logical.AddRange(await scenario.Run(http, alice, bob, cancellationToken));
            }

            var ledger = app.Services.GetRequiredService<LedgerRepository>();
            var totals = (await ledger.PaymentsByReferenceAsync(cancellationToken)).ToDictionary(t => t.Reference, StringComparer.Ordinal);
            var measures = new Dictionary<string, ScenarioMeasure>(StringComparer.Ordinal);
            var violations = new List<string>();
            foreach (var scenario in Scenario.All)
            {
                var requests = logical.Where(r => r.Scenario == scenario.Name).ToList();
                long charges = 0, moved = 0, extra = 0;
                foreach (var request in requests)
                {
                    var made = totals.TryGetValue(request.Reference, out var total) ? total : new ReferenceTotal(request.Reference, 0, 0);
                    charges += made.Payments;
                    moved += made.Amount;
                    extra += Math.Max(0, made.Payments - (request.ExpectMade ? 1 : 0));
                    violations.AddRange(request.Check(made.Payments).Select(v => $"{scenario.Name}: {v}"));
                }

                var answers = requests.SelectMany(r => r.Answers)
                    .GroupBy(a => a.Outcome, StringComparer.Ordinal)
                    .ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
                measures[scenario.Name] = new ScenarioMeasure(charges, moved, extra, answers, requests.Sum(r => r.Answers.Count(a => a.Replayed)));
            }

            foreach (var (name, measure, problems) in await SettlementWebhookDemo.RunAsync(address, bob, ledger, cancellationToken))
            {
                measures[name] = measure with { Noun = "settlement" };
                violations.AddRange(problems);
            }

            // Messages: each payout delivered twice, through the app's own bus (in memory).
            var payouts = await PayoutDemo.RunAsync(app.Services, alice, bob, cancellationToken);
            measures[PayoutDemo.Name] = payouts.Measure;
            violations.AddRange(payouts.Violations);

            await output.WriteLineAsync($"    {loss.Lost} answers dropped on the way back and {faults.Injected} requests failed with 500 before commit, all retried by the client; {System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds:0.0} s");
            var check = await ledger.CheckAsync(cancellationToken);
            await app.StopAsync(cancellationToken);
            return new ModeRun(measures, check, violations);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static async Task<(string Alice, string Bob)> SetUpAccountsAsync(HttpClient http, CancellationToken cancellationToken)
    {
        var alice = await CreateAccountAsync(http, "alice", cancellationToken);
        var bob = await CreateAccountAsync(http, "bob", cancellationToken);
        using var deposit = await http.PostAsJsonAsync($"/accounts/{alice}/deposits", new DepositRequest(1_000_000), cancellationToken);
        deposit.EnsureSuccessStatusCode();
        return (alice, bob);
    }

    private static async Task<string> CreateAccountAsync(HttpClient http, string name, CancellationToken cancellationToken)
    {
        using var response = await http.PostAsJsonAsync("/accounts", new CreateAccountRequest(name, "EUR"), cancellationToken);
        response.EnsureSuccessStatusCode();
        var account = await response.Content.ReadFromJsonAsync<Account>(cancellationToken);
        return account!.Id;
    }

    private static string Render(IReadOnlyList<ScenarioResult> scenarios, LedgerCheck without, LedgerCheck with)
    {
        var rows = new List<string[]> { new[] { "scenario", "without idempotency", "with idempotency" } };
        rows.AddRange(scenarios.Select(s => new[]
        {
            string.Create(CultureInfo.InvariantCulture, $"{s.Name} (expect {s.ExpectedCharges} {s.Noun}{(s.ExpectedCharges == 1 ? "" : "s")}, {s.ExpectedMoved} moved)"),
            s.Without.ToString(),
            s.With.ToString(),
        }));
        rows.Add(["ledger check", without.ToString(), with.ToString()]);
        var widths = Enumerable.Range(0, 3).Select(c => rows.Max(r => r[c].Length)).ToArray();
        var text = new StringBuilder();
        for (var i = 0; i < rows.Count; i++)
        {
            text.Append("| ").AppendJoin(" | ", rows[i].Select((cell, c) => cell.PadRight(widths[c]))).AppendLine(" |");
            if (i == 0)
            {
                text.Append('|').AppendJoin('|', widths.Select(w => new string('-', w + 2))).AppendLine("|");
            }
        }

        return text.ToString();
    }

    private sealed record ModeRun(Dictionary<string, ScenarioMeasure> Measures, LedgerCheck Ledger, List<string> Violations);

    /// <summary>One answer the client got for one send of a logical request.</summary>
    private sealed record Answer(string Outcome, bool Replayed)
    {
        public bool IsSuccess => Outcome.StartsWith('2');
    }

    /// <summary>One operation the client meant to perform (once), however many times it was sent.</summary>
    private sealed record LogicalRequest(string Scenario, string Reference, bool ExpectMade, IReadOnlyList<Answer> Answers)
    {
        public IEnumerable<string> Check(long made)
        {
            if (made > 1)
            {
                yield return $"'{Reference}' was charged {made} times";
            }

            if (ExpectMade && made == 0)
            {
                yield return $"'{Reference}' was lost: never made";
            }

            if (!ExpectMade && made > 0)
            {
                yield return $"'{Reference}' was made although its key belonged to another payment";
            }

            foreach (var answer in Answers)
            {
                if (made > 0 && !answer.IsSuccess)
                {
                    yield return $"the client was told '{Reference}' failed ({answer.Outcome}), but it was made";
                }
                else if (made == 0 && answer.IsSuccess)
                {
                    yield return $"the client was told '{Reference}' succeeded ({answer.Outcome}), but it was not made";
                }
            }
        }
    }

    private sealed record Scenario(string Name, long ExpectedCharges, long ExpectedMoved, Func<HttpClient, string, string, CancellationToken, Task<List<LogicalRequest>>> Run)
    {
        private const int LostCount = 5;
        private const int Clicks = 8;
        private const int FailedCount = 3;

        public static readonly IReadOnlyList<Scenario> All =
        [
            new("1. answer lost after commit", LostCount, LostCount * 100, async (http, from, to, ct) =>
            {
                var requests = new List<LogicalRequest>();
                for (var i = 0; i < LostCount; i++)
                {
                    var reference = $"lost-{i}";
                    var answer = await PayAsync(http, new PaymentRequest(from, to, 100, "EUR", reference), key: null, loseFirstAnswer: true, failFirstAttempt: false, ct);
                    requests.Add(new("1. answer lost after commit", reference, ExpectMade: true, [answer]));
                }

                return requests;
            }),
            new("2. double-click x8 in parallel", 1, 250, async (http, from, to, ct) =>
            {
                var key = Guid.NewGuid().ToString();
                var body = new PaymentRequest(from, to, 250, "EUR", "double-click");
                var answers = await Task.WhenAll(Enumerable.Range(0, Clicks).Select(_ => PayAsync(http, body, key, loseFirstAnswer: false, failFirstAttempt: false, ct)));
                return [new("2. double-click x8 in parallel", "double-click", ExpectMade: true, answers)];
            }),
            new("3. server error before commit", FailedCount, FailedCount * 300, async (http, from, to, ct) =>
            {
                var requests = new List<LogicalRequest>();
                for (var i = 0; i < FailedCount; i++)
                {
                    var reference = $"fault-{i}";
                    var answer = await PayAsync(http, new PaymentRequest(from, to, 300, "EUR", reference), key: null, loseFirstAnswer: false, failFirstAttempt: true, ct);
                    requests.Add(new("3. server error before commit", reference, ExpectMade: true, [answer]));
                }

                return requests;
            }),
            new("4. key reused, other amount", 1, 400, async (http, from, to, ct) =>
            {
                var key = Guid.NewGuid().ToString();
                var first = await PayAsync(http, new PaymentRequest(from, to, 400, "EUR", "reuse-first"), key, loseFirstAnswer: false, failFirstAttempt: false, ct);
                var second = await PayAsync(http, new PaymentRequest(from, to, 450, "EUR", "reuse-second"), key, loseFirstAnswer: false, failFirstAttempt: false, ct);
                return
                [
                    new("4. key reused, other amount", "reuse-first", ExpectMade: true, [first]),
                    new("4. key reused, other amount", "reuse-second", ExpectMade: false, [second]),
                ];
            }),
        ];

        private static async Task<Answer> PayAsync(HttpClient http, PaymentRequest body, string? key, bool loseFirstAnswer, bool failFirstAttempt, CancellationToken cancellationToken)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/payments") { Content = JsonContent.Create(body) };
            if (key is not null)
            {
                request.Headers.Add("Idempotency-Key", key);
            }

            if (loseFirstAnswer)
            {
                request.Options.Set(LoseFirstResponseHandler.Enabled, true);
            }

            if (failFirstAttempt)
            {
                request.Headers.Add(DemoFaults.HeaderName, DemoFaults.FailFirstAttempt);
            }

            try
            {
                using var response = await http.SendAsync(request, cancellationToken);
                return new Answer(((int)response.StatusCode).ToString(CultureInfo.InvariantCulture), response.Headers.Contains("Idempotent-Replayed"));
            }
            catch (Exception e) when (e is HttpRequestException or TimeoutRejectedException or BrokenCircuitException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                return new Answer(e.GetType().Name, Replayed: false);
            }
        }
    }
}
