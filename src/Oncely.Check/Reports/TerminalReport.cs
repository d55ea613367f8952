namespace Oncely.Check.Reports;

/// <summary>The summary on the terminal: one line per check, its evidence indented below; ANSI colour only when asked.</summary>
internal static class TerminalReport
{
    public static void Write(CheckReport report, TextWriter output, bool color)
    {
        output.WriteLine(Text.Invariant($"oncely-check {report.Method} {report.Target} ({report.RequestsSent} requests, {report.Duration.TotalSeconds:0.0} s)"));
        output.WriteLine();
        foreach (var result in report.Results)
        {
            output.WriteLine($"{Badge(result.Outcome, color)} {result.Id,-24} {result.Title} (draft §{result.DraftSection})");
            output.WriteLine("       " + result.Summary);
            if (result.Outcome is CheckOutcome.Fail or CheckOutcome.Warning)
            {
                foreach (var line in result.Evidence)
                {
                    output.WriteLine("         " + line);
                }
            }
        }

        output.WriteLine();
        var verdict = report.Failed ? Paint("FAILED", "31;1", color) : Paint("PASSED", "32;1", color);
        output.WriteLine(Text.Invariant($"{verdict}: {report.Count(CheckOutcome.Pass)} passed, {report.Count(CheckOutcome.Warning)} warnings, {report.Count(CheckOutcome.Fail)} failed, {report.Count(CheckOutcome.Skipped)} skipped"));
    }

    private static string Badge(CheckOutcome outcome, bool color) => outcome switch
    {
        CheckOutcome.Pass => Paint("PASS", "32", color) + " ",
        CheckOutcome.Warning => Paint("WARN", "33", color) + " ",
        CheckOutcome.Fail => Paint("FAIL", "31;1", color) + " ",
        _ => Paint("SKIP", "90", color) + " ",
    };

    private static string Paint(string text, string code, bool color) => color ? $"\u001b[{code}m{text}\u001b[0m" : text;
}
