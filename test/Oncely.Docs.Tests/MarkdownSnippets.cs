using System.Text.RegularExpressions;

namespace Oncely.Docs.Tests;

/// <summary>One <c>```csharp</c> block of the documentation.</summary>
/// <param name="File">The Markdown file, relative to the repository root (forward slashes).</param>
/// <param name="Line">The 1-based line of the block's first code line.</param>
/// <param name="Code">The block's text.</param>
/// <param name="Preamble">The names from <c>&lt;!-- snippet: preamble=a,b --&gt;</c> on the line just before the block; empty when none.</param>
/// <param name="Program">The name from <c>&lt;!-- snippet: program=name --&gt;</c>: the scenario that starts this whole program; null when none.</param>
public sealed partial record Snippet(string File, int Line, string Code, IReadOnlyList<string> Preamble, string? Program = null)
{
    /// <summary>What a test report shows: <c>docs/stores.md:42</c>.</summary>
    public string Id => $"{File}:{Line}";

    /// <summary>
    /// A whole program: a top-level statement that runs the app or host ends its statements (<c>app.Run();</c>,
    /// <c>await app.RunAsync();</c>, <c>builder.Build().Run();</c>), so a reader can paste it and start it. Every such
    /// snippet must be started by <see cref="DocumentationProgramTests"/>.
    /// </summary>
    public bool IsWholeProgram => Code.Split('\n').Any(line => RunsTheApp().IsMatch(line));

    [GeneratedRegex(@"^(await\s+)?[A-Za-z_][\w.]*(\(\))?\.Run(Async)?\(\);")]
    private static partial Regex RunsTheApp();
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
                var settings = directive.Success ? Settings(file, i, directive.Groups["settings"].Value) : [];
                IReadOnlyList<string> preamble = settings.TryGetValue("preamble", out var names)
                    ? names.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                    : [];
                yield return new Snippet(file, start + 1, string.Join('\n', lines[start..end]), preamble, settings.GetValueOrDefault("program"));
            }

            i = end;
        }
    }

    // <!-- snippet: preamble=builder,payments program=use-it -->: space-separated name=value settings.
    private static Dictionary<string, string> Settings(string file, int line, string text)
    {
        var settings = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var setting in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var match = Setting().Match(setting);
            if (!match.Success || !settings.TryAdd(match.Groups["name"].Value, match.Groups["value"].Value))
            {
                throw new InvalidOperationException($"{file}:{line + 1}: '{setting}' is not a snippet setting (preamble=a,b or program=name, each once).");
            }
        }

        return settings;
    }

    [GeneratedRegex(@"^```(?<lang>[^\s`]*)\s*$")]
    private static partial Regex Fence();

    [GeneratedRegex(@"^<!--\s*snippet:\s*(?<settings>.+?)\s*-->\s*$")]
    private static partial Regex Directive();

    [GeneratedRegex(@"^(?<name>preamble|program)=(?<value>[a-z0-9,-]+)$")]
    private static partial Regex Setting();
}
