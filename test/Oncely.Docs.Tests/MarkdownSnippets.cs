using System.Text.RegularExpressions;

namespace Oncely.Docs.Tests;

/// <summary>One <c>```csharp</c> block of the documentation.</summary>
/// <param name="File">The Markdown file, relative to the repository root (forward slashes).</param>
/// <param name="Line">The 1-based line of the block's first code line.</param>
/// <param name="Code">The block's text.</param>
/// <param name="Preamble">The names from <c>&lt;!-- snippet: preamble=a,b --&gt;</c> on the line just before the block; empty when none.</param>
public sealed record Snippet(string File, int Line, string Code, IReadOnlyList<string> Preamble)
{
    /// <summary>What a test report shows: <c>docs/stores.md:42</c>.</summary>
    public string Id => $"{File}:{Line}";
}

/// <summary>Finds the C# snippets of every documentation file.</summary>
public static partial class MarkdownSnippets
{
    /// <summary>README.md, docs/*.md, samples/Payments/README.md and src/*/README.md.</summary>
    public static IReadOnlyList<string> DocumentationFiles(string root)
    {
        var files = new List<string> { Path.Combine(root, "README.md"), Path.Combine(root, "samples", "Payments", "README.md") };
        files.AddRange(Directory.GetFiles(Path.Combine(root, "docs"), "*.md"));
        files.AddRange(Directory.GetDirectories(Path.Combine(root, "src")).Select(d => Path.Combine(d, "README.md")).Where(File.Exists));
        return [.. files.Select(f => Path.GetRelativePath(root, f).Replace('\\', '/')).Order(StringComparer.Ordinal)];
    }

    public static IEnumerable<Snippet> Read(string root, string file)
    {
        var lines = File.ReadAllLines(Path.Combine(root, file));
        for (var i = 0; i < lines.Length; i++)
        {
            var fence = Fence().Match(lines[i]);
            if (!fence.Success)
            {
                continue;
            }

            var start = i + 1;
            var end = start;
            while (end < lines.Length && !lines[end].TrimEnd().Equals("```", StringComparison.Ordinal))
            {
                end++;
            }

            if (fence.Groups["lang"].Value == "csharp")
            {
                var directive = i > 0 ? Directive().Match(lines[i - 1]) : Match.Empty;
                IReadOnlyList<string> preamble = directive.Success
                    ? directive.Groups["names"].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                    : [];
                yield return new Snippet(file, start + 1, string.Join('\n', lines[start..end]), preamble);
            }

            i = end;
        }
    }

    [GeneratedRegex(@"^```(?<lang>[^\s`]*)\s*$")]
    private static partial Regex Fence();

    [GeneratedRegex(@"^<!--\s*snippet:\s*preamble=(?<names>[a-z,\s-]+?)\s*-->\s*$")]
    private static partial Regex Directive();
}
