using System.Text;

namespace Oncely.Check.Reports;

/// <summary>The Markdown report (<c>--report</c>): a table of the checks, then each check's evidence.</summary>
internal static class MarkdownReport
{
    public static string Render(CheckReport report)
    {
        var text = new StringBuilder();
        text.Append("# oncely-check: ").Append(report.Method).Append(' ').AppendLine(report.Target.ToString());
        text.AppendLine();
        text.AppendLine(Text.Invariant($"Run at {report.StartedAt:yyyy-MM-dd HH:mm:ss} UTC, {report.RequestsSent} requests, {report.Duration.TotalSeconds:0.0} s. ")
            + Text.Invariant($"**{(report.Failed ? "FAILED" : "PASSED")}**: {report.Count(CheckOutcome.Pass)} passed, {report.Count(CheckOutcome.Warning)} warnings, {report.Count(CheckOutcome.Fail)} failed, {report.Count(CheckOutcome.Skipped)} skipped."));
        if (report.OtherBodyChange is { } change)
        {
            text.AppendLine();
            text.Append("Other body: changed `").Append(change).AppendLine("`.");
        }

        text.AppendLine();
        text.AppendLine("| result | check | rule | draft § | why |");
        text.AppendLine("|---|---|---|---|---|");
        foreach (var result in report.Results)
        {
            text.Append("| ").Append(Label(result.Outcome)).Append(" | `").Append(result.Id).Append("` | ").Append(Cell(result.Title))
                .Append(" | ").Append(result.DraftSection).Append(" | ").Append(Cell(result.Summary)).AppendLine(" |");
        }

        foreach (var result in report.Results.Where(result => result.Evidence.Count > 0))
        {
            text.AppendLine();
            text.Append("## ").Append(Label(result.Outcome)).Append(": `").Append(result.Id).AppendLine("`");
            text.AppendLine();
            text.AppendLine(result.Summary);
            text.AppendLine();
            text.AppendLine("```text");
            foreach (var line in result.Evidence)
            {
                text.AppendLine(line.Replace("```", "'''", StringComparison.Ordinal));
            }

            text.AppendLine("```");
        }

        return text.ToString();
    }

    private static string Label(CheckOutcome outcome) => outcome switch
    {
        CheckOutcome.Pass => "pass",
        CheckOutcome.Warning => "warning",
        CheckOutcome.Fail => "**FAIL**",
        _ => "skipped",
    };

    private static string Cell(string value) => value.Replace("|", "\\|", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);
}
