using System.Globalization;
using System.Xml;

namespace Oncely.Check.Reports;

/// <summary>
/// The JUnit XML report (<c>--junit</c>): one test suite, one test case per check; a failed check is a
/// <c>&lt;failure&gt;</c>, a skipped one <c>&lt;skipped&gt;</c>, and a warning passes with its summary in
/// <c>&lt;system-out&gt;</c>.
/// </summary>
internal static class JUnitReport
{
    public static void Write(CheckReport report, Stream output)
    {
        using var xml = XmlWriter.Create(output, new XmlWriterSettings { Indent = true, Encoding = new System.Text.UTF8Encoding(false), CheckCharacters = true });
        var seconds = report.Duration.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);
        xml.WriteStartDocument();
        xml.WriteStartElement("testsuites");
        xml.WriteAttributeString("name", "oncely-check");
        xml.WriteAttributeString("tests", Count(report.Results.Count));
        xml.WriteAttributeString("failures", Count(report.Count(CheckOutcome.Fail)));
        xml.WriteAttributeString("skipped", Count(report.Count(CheckOutcome.Skipped)));
        xml.WriteAttributeString("time", seconds);
        xml.WriteStartElement("testsuite");
        xml.WriteAttributeString("name", $"oncely-check {report.Method} {report.Target}");
        xml.WriteAttributeString("tests", Count(report.Results.Count));
        xml.WriteAttributeString("failures", Count(report.Count(CheckOutcome.Fail)));
        xml.WriteAttributeString("errors", "0");
        xml.WriteAttributeString("skipped", Count(report.Count(CheckOutcome.Skipped)));
        xml.WriteAttributeString("time", seconds);
        xml.WriteAttributeString("timestamp", report.StartedAt.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss", CultureInfo.InvariantCulture));
        foreach (var result in report.Results)
        {
            xml.WriteStartElement("testcase");
            xml.WriteAttributeString("classname", "oncely-check");
            xml.WriteAttributeString("name", result.Id);
            var details = Text.Invariant($"{result.Title} (draft-ietf-httpapi-idempotency-key-header, Section {result.DraftSection})\n{result.Summary}\n{string.Join("\n", result.Evidence)}");
            switch (result.Outcome)
            {
                case CheckOutcome.Fail:
                    xml.WriteStartElement("failure");
                    xml.WriteAttributeString("message", result.Summary);
                    xml.WriteAttributeString("type", "idempotency");
                    xml.WriteString(details);
                    xml.WriteEndElement();
                    break;
                case CheckOutcome.Skipped:
                    xml.WriteStartElement("skipped");
                    xml.WriteAttributeString("message", result.Summary);
                    xml.WriteEndElement();
                    break;
                default:
                    xml.WriteElementString("system-out", (result.Outcome == CheckOutcome.Warning ? "WARNING: " : string.Empty) + details);
                    break;
            }

            xml.WriteEndElement();
        }

        xml.WriteEndElement();
        xml.WriteEndElement();
        xml.WriteEndDocument();
    }

    private static string Count(int value) => value.ToString(CultureInfo.InvariantCulture);
}
