using Oncely.Check.Tests.Infrastructure;

namespace Oncely.Check.Tests;

/// <summary>
/// Issue 23: the checker against small apps written for the purpose, each breaking one rule, and against the same app
/// with no flaw: exactly the broken rule fails, with evidence that says why, and the exit code is 1 (0 for no flaw).
/// </summary>
public sealed class FlawedAppTests
{
    private static Task<CheckerRun> CheckAsync(TargetApp app) => Checker.RunAsync(
        app.Url, "--header", TargetApp.Alice, "--body", TargetApp.Body, "--second-header", TargetApp.Bob, "--effects-url", app.EffectsUrl);

    [Fact]
    public async Task WellBehavedApp_EveryCheckPasses_ExitsZero()
    {
        await using var app = await TargetApp.StartAsync(Flaw.None);

        var run = await CheckAsync(app);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.All(run.Outcomes, pair => Assert.True(pair.Value == "pass", $"{pair.Key}: {pair.Value}\n{run}"));
        Assert.Equal(11, run.Outcomes.Count);
    }

    [Fact]
    public async Task NoIdempotency_RetryConcurrencyAndReuseFail_ExitsOne()
    {
        await using var app = await TargetApp.StartAsync(Flaw.NoIdempotency);

        var run = await CheckAsync(app);

        Assert.True(run.ExitCode == 1, run.ToString());
        Assert.Equal(
            ["concurrent-duplicates", "conflicting-key-fields", "key-control-characters", "other-body-refused", "retry-replays"],
            run.Failed.Order());
        Assert.Contains("the body is not byte-identical", run.Summary("retry-replays"));
        Assert.Contains("the retry performed 1 more effect(s)", run.Summary("retry-replays"));
        Assert.Contains("8 effects performed, not exactly one", run.Summary("concurrent-duplicates"));
        Assert.Contains("performed 1 effect(s)", run.Summary("other-body-refused"));
        Assert.Equal("warning", run.Outcomes["missing-key"]);
        Assert.Equal("warning", run.Outcomes["key-overlong-refused"]);
        Assert.Equal("pass", run.Outcomes["no-server-errors"]);
    }

    [Fact]
    public async Task ServerErrorWithoutKey_MissingKeyAndNoServerErrorsFail()
    {
        await using var app = await TargetApp.StartAsync(Flaw.ServerErrorWithoutKey);

        var run = await CheckAsync(app);

        Assert.True(run.ExitCode == 1, run.ToString());
        Assert.Equal(["missing-key", "no-server-errors"], run.Failed.Order());
        Assert.Contains("500 Internal Server Error", run.Summary("missing-key"));
        Assert.Contains("no key: POST /orders", run.Evidence("no-server-errors"));
        Assert.All(run.Outcomes.Where(pair => !run.Failed.Contains(pair.Key)), pair => Assert.Equal("pass", pair.Value));
    }

    [Fact]
    public async Task ReplayWithoutLocation_OnlyTheRetryCheckFails_NamingLocation()
    {
        await using var app = await TargetApp.StartAsync(Flaw.ReplayWithoutLocation);

        var run = await CheckAsync(app);

        Assert.True(run.ExitCode == 1, run.ToString());
        Assert.Equal(["retry-replays"], run.Failed.Order());
        Assert.Contains("Location changed: /orders/ord_1 then (none)", run.Summary("retry-replays"));
        Assert.All(run.Outcomes.Where(pair => !run.Failed.Contains(pair.Key)), pair => Assert.Equal("pass", pair.Value));
    }

    [Fact]
    public async Task RacyStore_OnlyTheConcurrencyCheckFails_CountingEffects()
    {
        await using var app = await TargetApp.StartAsync(Flaw.RacyStore);

        var run = await CheckAsync(app);

        Assert.True(run.ExitCode == 1, run.ToString());
        Assert.Equal(["concurrent-duplicates"], run.Failed.Order());
        // How many copies slip through depends on how closely they arrive; one is enough to fail, and each rule says so.
        Assert.Matches(@"[2-8] different answer bodies: the operation ran more than once", run.Summary("concurrent-duplicates"));
        Assert.Matches(@"[2-8] effects performed, not exactly one", run.Summary("concurrent-duplicates"));
        Assert.Matches(@"[2-8] fresh answers \(without the replay marker\), not exactly one", run.Summary("concurrent-duplicates"));
        Assert.All(run.Outcomes.Where(pair => !run.Failed.Contains(pair.Key)), pair => Assert.Equal("pass", pair.Value));
    }

    [Fact]
    public async Task RacyStore_WithoutEffectsUrl_StillCaughtByTheAnswers()
    {
        await using var app = await TargetApp.StartAsync(Flaw.RacyStore);

        var run = await Checker.RunAsync(app.Url, "--header", TargetApp.Alice, "--body", TargetApp.Body, "--concurrency", "4");

        Assert.True(run.ExitCode == 1, run.ToString());
        Assert.Equal(["concurrent-duplicates"], run.Failed.Order());
        Assert.Matches(@"[2-4] different answer bodies", run.Summary("concurrent-duplicates"));
        Assert.Equal("skipped", run.Outcomes["caller-isolation"]);
    }

    [Fact]
    public async Task SharedScope_OnlyCallerIsolationFails_ShowingBothAnswers()
    {
        await using var app = await TargetApp.StartAsync(Flaw.SharedScope);

        var run = await CheckAsync(app);

        Assert.True(run.ExitCode == 1, run.ToString());
        Assert.Equal(["caller-isolation"], run.Failed.Order());
        Assert.Contains("keys are not scoped by caller", run.Summary("caller-isolation"));
        Assert.Contains("second caller, first caller's key: POST /orders | Authorization: <redacted>", run.Evidence("caller-isolation"));
        Assert.Contains("Idempotent-Replayed: true", run.Evidence("caller-isolation"));
        Assert.All(run.Outcomes.Where(pair => !run.Failed.Contains(pair.Key)), pair => Assert.Equal("pass", pair.Value));
    }
}
