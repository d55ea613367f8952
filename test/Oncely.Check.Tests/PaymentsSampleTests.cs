using System.Text.Json;
using System.Xml.Linq;
using Oncely.Check.Tests.Infrastructure;
using Payments.Tests;

namespace Oncely.Check.Tests;

/// <summary>
/// Issue 23: the checker against the real Payments sample (Oncely over SQLite, on Kestrel, in Development so that
/// <c>GET /dev/effects/accounts</c> counts the accounts created): every check passes, and the three reports are ones
/// a reviewer and a CI can read.
/// </summary>
public sealed class PaymentsSampleTests
{
    internal const string Account = "{\"name\":\"alice\",\"currency\":\"EUR\"}";

    internal static string[] Arguments(PaymentsHost host) =>
    [
        new Uri(host.Address, "/accounts").ToString(),
        "--header", $"Authorization: Bearer {PaymentsHost.TenantA}",
        "--body", Account,
        "--second-header", $"Authorization: Bearer {PaymentsHost.TenantB}",
        "--effects-url", new Uri(host.Address, Payments.DevelopmentEndpoints.AccountEffectsPath).ToString(),
    ];

    [Fact]
    public async Task PaymentsSample_EveryCheckPasses_AndTheReportsParse()
    {
        await using var host = await PaymentsHost.StartAsync(kestrel: true, environment: "Development");
        var directory = Directory.CreateTempSubdirectory("oncely-check-reports-");
        try
        {
            var markdown = Path.Combine(directory.FullName, "report.md");
            var junit = Path.Combine(directory.FullName, "report.xml");

            var run = await Checker.RunAsync([.. Arguments(host), "--report", markdown, "--junit", junit]);

            Assert.True(run.ExitCode == 0, run.ToString());
            Assert.All(run.Outcomes, pair => Assert.True(pair.Value == "pass", $"{pair.Key}: {pair.Value}\n{run}"));
            Assert.Equal(11, run.Outcomes.Count);
            Assert.Contains("Idempotent-Replayed: true", run.Evidence("retry-replays"));
            Assert.Contains("effects: 0 → 1 after the first request, 1 after the retry", run.Evidence("retry-replays"));
            Assert.Contains("Refused with 422", run.Summary("other-body-refused"));
            Assert.Equal("$.name: \"alice\" → \"alice-other\"", run.Report!.Value.GetProperty("otherBodyChange").GetString());
            Assert.Contains("PASSED: 11 passed, 0 warnings, 0 failed, 0 skipped", run.Output);
            Assert.DoesNotContain(PaymentsHost.TenantA, run.Output + File.ReadAllText(markdown) + File.ReadAllText(junit) + run.Report.Value.GetRawText());

            // The account creation ran exactly: retry #1, the no-key request is refused, the 255-character key, the concurrent burst's one, tenant B's own.
            using var tenantA = host.Client();
            Assert.Equal(3, JsonSerializer.Deserialize<long>(await tenantA.GetStringAsync(Payments.DevelopmentEndpoints.AccountEffectsPath)));

            var text = await File.ReadAllTextAsync(markdown);
            Assert.Contains("| result | check | rule | draft § | why |", text);
            Assert.Contains("| pass | `concurrent-duplicates` |", text);

            var xml = XDocument.Load(junit);
            var cases = xml.Descendants("testcase").ToList();
            Assert.Equal(11, cases.Count);
            Assert.Equal(run.Outcomes.Keys.Order(), cases.Select(testcase => (string)testcase.Attribute("name")!).Order());
            Assert.Empty(xml.Descendants("failure"));
            Assert.Equal("0", (string)xml.Root!.Attribute("failures")!);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }
}
