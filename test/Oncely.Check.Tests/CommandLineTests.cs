using System.Text;
using System.Text.Json;
using System.Xml.Linq;
using Oncely.Check.Tests.Infrastructure;

namespace Oncely.Check.Tests;

/// <summary>Issue 23: what the command line accepts and refuses, the bounds on what a run sends, and the reports' formats on a failing run.</summary>
public sealed class CommandLineTests
{
    [Fact]
    public async Task DryRun_PrintsTheRequests_AndSendsNothing()
    {
        await using var app = await TargetApp.StartAsync(Flaw.None);

        var run = await Checker.RunAsync(app.Url, "--header", TargetApp.Alice, "--body", TargetApp.Body, "--effects-url", app.EffectsUrl, "--dry-run");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(0, app.Hits);
        Assert.Null(run.Report);
        Assert.Contains("22 requests would be sent", run.Output);
        Assert.Contains("nothing was sent", run.Output);
        Assert.Contains("[retry #1] POST /orders | Authorization: <redacted> | Idempotency-Key: \"oncely-check-", run.Output);
        Assert.Contains("[concurrent copy 8/8]", run.Output);
        Assert.Contains("other body: changed $.amount: 100 → 101", run.Output);
        Assert.DoesNotContain("Bearer alice", run.Output);
    }

    [Fact]
    public async Task MaxRequests_BelowThePlan_RefusedBeforeAnythingIsSent()
    {
        await using var app = await TargetApp.StartAsync(Flaw.None);

        var run = await Checker.RunAsync(app.Url, "--header", TargetApp.Alice, "--body", TargetApp.Body, "--max-requests", "10");

        Assert.Equal(2, run.ExitCode);
        Assert.Equal(0, app.Hits);
        Assert.Contains("more than --max-requests 10", run.Error);
    }

    [Fact]
    public async Task EveryRequest_GoesToTheGivenUrls_AndTheKeysAreFreshPerCheck()
    {
        await using var app = await TargetApp.StartAsync(Flaw.None);

        var first = await Checker.RunAsync(app.Url, "--header", TargetApp.Alice, "--body", TargetApp.Body, "--effects-url", app.EffectsUrl, "--concurrency", "3");
        var second = await Checker.RunAsync(app.Url, "--header", TargetApp.Alice, "--body", TargetApp.Body, "--effects-url", app.EffectsUrl, "--concurrency", "3");

        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.True(second.ExitCode == 0, second.ToString());
        var sent = first.Report!.Value.GetProperty("requests").GetInt32();
        Assert.Equal(3 + 2 + 1 + 5 + 6, sent);          // retry ×2, other body, 3 copies, no key, 255, 256, control, conflicting; 6 effects reads
        Assert.Equal(2 * sent, app.Hits);
    }

    [Fact]
    public async Task Redirects_AreNeverFollowed()
    {
        await using var app = await TargetApp.StartAsync(Flaw.None);

        var run = await Checker.RunAsync(app.MovedUrl, "--header", TargetApp.Alice, "--body", TargetApp.Body, "--concurrency", "2");

        Assert.Equal(0, app.ElsewhereHits);
        Assert.Contains("→ 307 Temporary Redirect | Location: /elsewhere", run.Evidence("retry-replays"));
    }

    [Fact]
    public async Task EffectsUrlNotANumber_ExitsTwo_NamingTheAnswer()
    {
        await using var app = await TargetApp.StartAsync(Flaw.None);

        var run = await Checker.RunAsync(app.Url, "--header", TargetApp.Alice, "--body", TargetApp.Body, "--effects-url", app.Url);

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--effects-url answered 405 Method Not Allowed", run.Error);
        Assert.Equal(1, app.Hits); // the first effects read, and nothing after it
    }

    [Fact]
    public async Task UnreachableUrl_ExitsTwo()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop(); // a port nobody listens on

        var run = await Checker.RunAsync($"http://127.0.0.1:{port}/payments", "--body", "{\"amount\":1}", "--timeout", "5");

        Assert.Equal(2, run.ExitCode);
        Assert.Contains($"Cannot reach http://127.0.0.1:{port}", run.Error);
        Assert.Null(run.Report);
    }

    [Theory]
    [InlineData("no url", new string[0], "Required argument missing")]
    [InlineData("relative url", new[] { "/payments" }, "is not an absolute http:// or https:// URL")]
    [InlineData("ftp url", new[] { "ftp://example.com/x" }, "is not an absolute http:// or https:// URL")]
    [InlineData("header without colon", new[] { "http://127.0.0.1:1/x", "--header", "Authorization Bearer x" }, "is not \"Name: value\"")]
    [InlineData("concurrency 1", new[] { "http://127.0.0.1:1/x", "--concurrency", "1" }, "--concurrency 1: give 2 to 64")]
    [InlineData("unknown option", new[] { "http://127.0.0.1:1/x", "--frobnicate" }, "--frobnicate")]
    [InlineData("missing body file", new[] { "http://127.0.0.1:1/x", "--body", "@/nonexistent/body.json" }, "cannot read the file")]
    [InlineData("same other body", new[] { "http://127.0.0.1:1/x", "--body", "{}", "--other-body", "{}" }, "--other-body is the same as --body")]
    [InlineData("bad key format", new[] { "http://127.0.0.1:1/x", "--key-format", "base64" }, "give sf-string or bare")]
    public async Task BadArguments_ExitTwo_SayingWhatToChange(string _, string[] args, string message)
    {
        var run = await Checker.RunAsync(args);

        Assert.Equal(2, run.ExitCode);
        Assert.Contains(message, run.Error);
    }

    [Fact]
    public async Task Help_ExitsZero_ListingTheIssuesOptions()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();

        var exit = await CheckCommand.RunAsync(["--help"], output, error, terminal: false);

        Assert.Equal(0, exit);
        foreach (var option in (string[])["--method", "--header", "--body", "--other-body", "--key-header", "--second-header", "--effects-url", "--concurrency", "--report", "--json", "--junit", "--dry-run", "--timeout", "--max-requests"])
        {
            Assert.Contains(option, output.ToString());
        }
    }

    [Fact]
    public async Task BodyFromFile_AndExplicitOtherBody_AreSentAsGiven()
    {
        await using var app = await TargetApp.StartAsync(Flaw.None);
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(file, TargetApp.Body);

            var run = await Checker.RunAsync(app.Url, "--header", TargetApp.Alice, "--body", "@" + file, "--other-body", "{\"item\":\"pen\",\"amount\":5}", "--concurrency", "2");

            Assert.True(run.ExitCode == 0, run.ToString());
            Assert.Equal("the whole body (--other-body)", run.Report!.Value.GetProperty("otherBodyChange").GetString());
            Assert.Contains("body 25 B {\"item\":\"pen\",\"amount\":5}", run.Evidence("other-body-refused"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task FailingRun_JUnitMarksTheFailure_MarkdownAndJsonSayWhy()
    {
        await using var app = await TargetApp.StartAsync(Flaw.ReplayWithoutLocation);
        var directory = Directory.CreateTempSubdirectory("oncely-check-reports-");
        try
        {
            var markdown = Path.Combine(directory.FullName, "report.md");
            var junit = Path.Combine(directory.FullName, "report.xml");

            var run = await Checker.RunAsync(app.Url, "--header", TargetApp.Alice, "--body", TargetApp.Body, "--report", markdown, "--junit", junit);

            Assert.Equal(1, run.ExitCode);
            Assert.Equal("fail", run.Report!.Value.GetProperty("result").GetString());
            Assert.Equal(1, run.Report.Value.GetProperty("totals").GetProperty("fail").GetInt32());
            Assert.Contains("FAIL  retry-replays", run.Output);
            Assert.DoesNotContain("\u001b[", run.Output); // not a terminal: no colour

            var xml = XDocument.Load(junit);
            var cases = xml.Descendants("testcase").ToList();
            Assert.Equal(run.Outcomes.Count, cases.Count);
            var failed = Assert.Single(cases, testcase => testcase.Element("failure") is not null);
            Assert.Equal("retry-replays", (string)failed.Attribute("name")!);
            Assert.Contains("Location changed", (string)failed.Element("failure")!.Attribute("message")!);
            Assert.Equal("1", (string)xml.Root!.Attribute("failures")!);
            Assert.Single(cases, testcase => testcase.Element("skipped") is not null); // caller-isolation: no --second-header

            var text = await File.ReadAllTextAsync(markdown);
            Assert.Contains("**FAILED**", text);
            Assert.Contains("| **FAIL** | `retry-replays` |", text);
            Assert.Contains("## **FAIL**: `retry-replays`", text);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Colour_OnlyOnATerminal_AndNeverWithNoColor()
    {
        await using var app = await TargetApp.StartAsync(Flaw.None);
        string[] args = [app.Url, "--header", TargetApp.Alice, "--body", TargetApp.Body, "--concurrency", "2"];
        using var terminal = new StringWriter();
        using var plain = new StringWriter();

        Assert.Equal(0, await CheckCommand.RunAsync(args, terminal, TextWriter.Null, terminal: true));
        Assert.Equal(0, await CheckCommand.RunAsync([.. args, "--no-color"], plain, TextWriter.Null, terminal: true));

        Assert.Contains("\u001b[32mPASS\u001b[0m", terminal.ToString());
        Assert.DoesNotContain("\u001b[", plain.ToString());
    }

    [Theory]
    [InlineData("{\"amount\":100,\"currency\":\"EUR\"}", "$.amount: 100 → 101", "{\"amount\":101,\"currency\":\"EUR\"}")]
    [InlineData("{\"payer\":{\"name\":\"ann\"},\"lines\":[{\"sku\":\"a\",\"qty\":2}]}", "$.lines[0].qty: 2 → 3", "{\"payer\":{\"name\":\"ann\"},\"lines\":[{\"sku\":\"a\",\"qty\":3}]}")]
    [InlineData("{\"name\":\"alice\",\"ok\":true}", "$.name: \"alice\" → \"alice-other\"", "{\"name\":\"alice-other\",\"ok\":true}")]
    public void OtherBody_ChangesOneNumberOrElseOneString(string body, string change, string expected)
    {
        var derived = OtherBody.Derive(Encoding.UTF8.GetBytes(body));

        Assert.NotNull(derived);
        Assert.Equal(change, derived.Value.Change);
        Assert.Equal(expected, Encoding.UTF8.GetString(derived.Value.Body));
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("{\"ok\":true}")]
    [InlineData("42")]
    public void OtherBody_NothingToChange_Null(string body) => Assert.Null(OtherBody.Derive(Encoding.UTF8.GetBytes(body)));

    [Theory]
    [InlineData("7", 7L)]
    [InlineData(" 7\n", 7L)]
    [InlineData("[1,2,3]", 3L)]
    [InlineData("\"12\"", 12L)]
    [InlineData("{\"count\":1}", null)]
    [InlineData("seven", null)]
    public void Effects_NumberOrArrayLength(string body, long? expected)
        => Assert.Equal(expected, ConformanceRun.ParseEffects(Encoding.UTF8.GetBytes(body)));

    [Fact]
    public async Task JsonReport_IsValidJson_WithOneEntryPerCheck()
    {
        await using var app = await TargetApp.StartAsync(Flaw.None);

        var run = await Checker.RunAsync(app.Url, "--header", TargetApp.Alice, "--body", TargetApp.Body, "--concurrency", "2");

        var report = run.Report!.Value;
        Assert.Equal("oncely-check", report.GetProperty("tool").GetString());
        Assert.Equal(app.Url, report.GetProperty("target").GetString());
        Assert.Equal(JsonValueKind.Array, report.GetProperty("checks").ValueKind);
        Assert.Equal(11, report.GetProperty("checks").GetArrayLength());
        foreach (var check in report.GetProperty("checks").EnumerateArray())
        {
            Assert.False(string.IsNullOrEmpty(check.GetProperty("draftSection").GetString()));
            Assert.Contains(check.GetProperty("outcome").GetString(), (string[])["pass", "warning", "fail", "skipped"]);
        }
    }
}
