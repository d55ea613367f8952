using System.Text.Json;

namespace Oncely.Check.Tests.Infrastructure;

/// <summary>What one in-process run of <c>oncely-check</c> gave: the exit code, the terminal output and the JSON report.</summary>
public sealed record CheckerRun(int ExitCode, string Output, string Error, JsonElement? Report)
{
    public IReadOnlyDictionary<string, string> Outcomes => Report is { } report
        ? report.GetProperty("checks").EnumerateArray().ToDictionary(check => check.GetProperty("id").GetString()!, check => check.GetProperty("outcome").GetString()!)
        : new Dictionary<string, string>();

    public IReadOnlySet<string> Failed => Outcomes.Where(pair => pair.Value == "fail").Select(pair => pair.Key).ToHashSet();

    public JsonElement Check(string id) => Report!.Value.GetProperty("checks").EnumerateArray().Single(check => check.GetProperty("id").GetString() == id);

    public string Evidence(string id) => string.Join("\n", Check(id).GetProperty("evidence").EnumerateArray().Select(line => line.GetString()));

    public string Summary(string id) => Check(id).GetProperty("summary").GetString()!;

    public override string ToString() => $"exit {ExitCode}\n{Output}\n{Error}";
}

/// <summary>Runs the checker in-process (the same entry point as the installed tool), with a JSON report to read back.</summary>
public static class Checker
{
    public static async Task<CheckerRun> RunAsync(params string[] args)
    {
        var directory = Directory.CreateTempSubdirectory("oncely-check-");
        try
        {
            var json = Path.Combine(directory.FullName, "report.json");
            using var output = new StringWriter();
            using var error = new StringWriter();
            var exit = await CheckCommand.RunAsync([.. args, "--json", json], output, error, terminal: false);
            JsonElement? report = File.Exists(json) ? JsonDocument.Parse(await File.ReadAllBytesAsync(json)).RootElement.Clone() : null;
            return new CheckerRun(exit, output.ToString(), error.ToString(), report);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }
}
