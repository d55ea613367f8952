using System.Text.Json;

namespace Oncely.Check.Reports;

/// <summary>The JSON report (<c>--json</c>): the run's totals and each check with its outcome and evidence.</summary>
internal static class JsonReport
{
    public static void Write(CheckReport report, Stream output)
    {
        using var json = new Utf8JsonWriter(output, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteString("tool", "oncely-check");
        json.WriteString("target", report.Target.ToString());
        json.WriteString("method", report.Method);
        json.WriteString("startedAt", report.StartedAt);
        json.WriteNumber("durationMs", Math.Round(report.Duration.TotalMilliseconds));
        json.WriteNumber("requests", report.RequestsSent);
        json.WriteString("result", report.Failed ? "fail" : "pass");
        if (report.OtherBodyChange is { } change)
        {
            json.WriteString("otherBodyChange", change);
        }

        json.WriteStartObject("totals");
        foreach (var outcome in Enum.GetValues<CheckOutcome>())
        {
            json.WriteNumber(Name(outcome), report.Count(outcome));
        }

        json.WriteEndObject();
        json.WriteStartArray("checks");
        foreach (var result in report.Results)
        {
            json.WriteStartObject();
            json.WriteString("id", result.Id);
            json.WriteString("title", result.Title);
            json.WriteString("draftSection", result.DraftSection);
            json.WriteString("outcome", Name(result.Outcome));
            json.WriteString("summary", result.Summary);
            json.WriteStartArray("evidence");
            foreach (var line in result.Evidence)
            {
                json.WriteStringValue(line);
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    public static string Name(CheckOutcome outcome) => outcome switch
    {
        CheckOutcome.Pass => "pass",
        CheckOutcome.Warning => "warning",
        CheckOutcome.Fail => "fail",
        _ => "skipped",
    };
}
