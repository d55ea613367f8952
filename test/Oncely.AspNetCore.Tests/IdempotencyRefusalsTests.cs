using System.Reflection;
using System.Text.RegularExpressions;

namespace Oncely.AspNetCore.Tests;

/// <summary>
/// The refusal catalogue (<see cref="IdempotencyRefusals"/>) and the decision table in <c>docs/decision-table.md</c> say
/// the same thing: every entry's row exists, with the entry's status and problem type, and every problem type Oncely
/// answers with has its entry.
/// </summary>
public sealed partial class IdempotencyRefusalsTests
{
    public static TheoryData<string> Entries()
    {
        var data = new TheoryData<string>();
        foreach (var field in CatalogueFields())
        {
            data.Add(field.Name);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Entries))]
    public void Entry_RowOfTheDecisionTable_HasTheSameStatusAndProblemType(string entry)
    {
        var refusal = (IdempotencyRefusal)typeof(IdempotencyRefusals).GetField(entry)!.GetValue(null)!;

        var row = DecisionTableRow(refusal.Row);

        Assert.True(row is not null, $"{entry}: docs/decision-table.md has no row {refusal.Row}");
        Assert.Contains($"`{refusal.Status}`", row, StringComparison.Ordinal);
        Assert.Contains($"`{refusal.ProblemType}`", row, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Entries))]
    public void Entry_Name_NamesItsRow(string entry)
    {
        var refusal = (IdempotencyRefusal)typeof(IdempotencyRefusals).GetField(entry)!.GetValue(null)!;

        var row = refusal.Row.Length == 1 || !char.IsDigit(refusal.Row[1]) ? "0" + refusal.Row : refusal.Row;

        Assert.StartsWith("Row" + row, entry, StringComparison.Ordinal);
    }

    [Fact]
    public void All_EveryEntry_HeldOnce()
    {
        var entries = CatalogueFields().Select(f => (IdempotencyRefusal)f.GetValue(null)!).ToList();

        Assert.Equal(entries.Count, IdempotencyRefusals.All.Count);
        Assert.All(entries, e => Assert.Contains(e, IdempotencyRefusals.All));
    }

    [Fact]
    public void ProblemTypes_EveryTypeOncelyAnswersWith_HasACatalogueEntry()
    {
        var types = typeof(IdempotencyProblemTypes).GetFields(BindingFlags.Public | BindingFlags.Static).Select(f => (string)f.GetValue(null)!);

        Assert.All(types, type => Assert.Contains(IdempotencyRefusals.All, r => r.ProblemType == type));
    }

    [Theory]
    [InlineData(100, false)]
    [InlineData(199, false)]
    [InlineData(200, true)]
    [InlineData(302, true)]
    [InlineData(404, true)]
    [InlineData(408, false)]
    [InlineData(409, false)]
    [InlineData(425, false)]
    [InlineData(429, false)]
    [InlineData(500, false)]
    public void ReplayRule_DefaultOptions_StoresRows10AndReleasesRows11(int status, bool stored)
    {
        var options = new IdempotencyOptions();
        var rule = new IdempotencyEndpointSettings(options, policy: null).ReplayRule;

        Assert.Equal(stored, rule.Stores(status));
    }

    // The words clients and their tests already see: the catalogue must keep them exactly.
    [Theory]
    [InlineData(null, "alice", 400, "Idempotency-Key required", "POST /payments performs an effectful operation: send an Idempotency-Key header (for example a UUID) and reuse the same key on every retry of this operation.")]
    [InlineData("a b", "alice", 400, "Invalid Idempotency-Key", "The Idempotency-Key contains a character outside visible ASCII (spaces, control characters and non-ASCII text are not allowed).")]
    [InlineData("k", null, 401, "Authentication required", "This idempotent operation keeps each caller's answers apart, so it needs an authenticated caller: send valid credentials. Nothing was executed.")]
    [InlineData("k", "no-id", 500, "Caller could not be identified", "The server could not tell which tenant this authenticated request belongs to, so it refused to run it. This is a server configuration problem (IdempotencyOptions.TenantResolver).")]
    public async Task Refusal_AnswerBody_KeepsItsTitleAndDetailWordForWord(string? key, string? user, int status, string title, string detail)
    {
        await using var app = await TestApp.StartAsync();

        var response = await app.PostAsync("/payments", key, user: user);

        Assert.Equal(status, (int)response.StatusCode);
        var problem = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(title, problem.GetProperty("title").GetString());
        Assert.Equal(detail, problem.GetProperty("detail").GetString());
    }

    private static IEnumerable<FieldInfo> CatalogueFields()
        => typeof(IdempotencyRefusals).GetFields(BindingFlags.Public | BindingFlags.Static).Where(f => f.FieldType == typeof(IdempotencyRefusal));

    // The first line of the main table whose first cell is the row number.
    private static string? DecisionTableRow(string row)
    {
        var lines = File.ReadAllLines(Path.Combine(RepositoryRoot(), "docs", "decision-table.md"));
        return lines.FirstOrDefault(l => RowCell().Match(l) is { Success: true } m && m.Groups[1].Value == row);
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "docs", "decision-table.md")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("docs/decision-table.md not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"^\| (\w+) \|")]
    private static partial Regex RowCell();
}
