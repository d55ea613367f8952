namespace Oncely.Docs.Tests;

/// <summary>
/// Every <c>```csharp</c> block in README.md, docs/*.md, samples/Payments/README.md and src/*/README.md compiles as shown
/// (see README.md in this folder for the convention). A failure names the file and line of the block and lists the
/// compiler's errors, mapped to the Markdown file's lines.
/// </summary>
public sealed class DocumentationSnippetTests
{
    public static readonly string Root = FindRoot();

    public static TheoryData<string> Snippets()
    {
        var data = new TheoryData<string>();
        foreach (var snippet in All())
        {
            data.Add(snippet.Id);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Snippets))]
    public void Snippet_CompilesAsShown(string snippet)
    {
        var found = All().Single(s => s.Id == snippet);

        var errors = SnippetCompiler.Errors(found);

        Assert.True(errors.Count == 0, $"{snippet} does not compile:\n{string.Join('\n', errors)}\n\nCompiled as:\n{SnippetCompiler.Source(found)}");
    }

    [Fact]
    public void Documentation_HasCSharpSnippetsInEveryPlaceScanned()
    {
        var files = All().Select(s => s.File).ToHashSet(StringComparer.Ordinal);

        Assert.Contains("README.md", files);
        Assert.Contains("samples/Payments/README.md", files);
        Assert.Contains(files, f => f.StartsWith("docs/", StringComparison.Ordinal));
        Assert.Contains(files, f => f.StartsWith("src/", StringComparison.Ordinal));
    }

    [Fact]
    public void Documentation_UsesNoOtherSpellingOfCSharpFences()
    {
        // A ```cs or ```c# block would escape this test; non-compilable code is marked ```csharp-fragment on purpose.
        var offenders = MarkdownSnippets.DocumentationFiles(Root)
            .SelectMany(file => File.ReadLines(Path.Combine(Root, file)).Select((line, i) => (file, line: i + 1, text: line.Trim())))
            .Where(l => l.text is "```cs" or "```c#" or "```C#" or "```CSharp" or "```dotnet")
            .Select(l => $"{l.file}:{l.line}");

        Assert.Empty(offenders);
    }

    private static IEnumerable<Snippet> All()
        => MarkdownSnippets.DocumentationFiles(Root).SelectMany(file => MarkdownSnippets.Read(Root, file));

    private static string FindRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Oncely.slnx")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("Oncely.slnx not found above the test output.");
    }
}
