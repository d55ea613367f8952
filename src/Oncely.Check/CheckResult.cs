namespace Oncely.Check;

/// <summary>One check's verdict with the evidence a reviewer needs to act on it.</summary>
/// <param name="Id">A stable, lower-case id (<c>retry-replays</c>): the JUnit test case name and the JSON key.</param>
/// <param name="Title">What the rule is, in one line.</param>
/// <param name="DraftSection">The section of draft-ietf-httpapi-idempotency-key-header the rule comes from.</param>
/// <param name="Outcome">Pass, warning, fail or skipped.</param>
/// <param name="Summary">Why, in one or two sentences.</param>
/// <param name="Evidence">The requests and answers that show it, abbreviated, one line each.</param>
internal sealed record CheckResult(string Id, string Title, string DraftSection, CheckOutcome Outcome, string Summary, IReadOnlyList<string> Evidence);

/// <summary>A whole run: what was checked, and each check's result.</summary>
internal sealed record CheckReport(
    Uri Target,
    string Method,
    DateTimeOffset StartedAt,
    TimeSpan Duration,
    int RequestsSent,
    string? OtherBodyChange,
    IReadOnlyList<CheckResult> Results)
{
    public int Count(CheckOutcome outcome) => Results.Count(result => result.Outcome == outcome);

    public bool Failed => Results.Any(result => result.Outcome == CheckOutcome.Fail);
}
