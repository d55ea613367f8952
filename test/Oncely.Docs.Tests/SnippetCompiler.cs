using System.Collections.Concurrent;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Oncely.Docs.Tests;

/// <summary>Compiles a snippet as a C# program with top-level statements, the way a reader would paste it.</summary>
public static class SnippetCompiler
{
    /// <summary>The implicit global usings of a <c>Microsoft.NET.Sdk.Web</c> project with <c>ImplicitUsings</c> on.</summary>
    public static readonly IReadOnlyList<string> WebSdkUsings =
    [
        "System", "System.Collections.Generic", "System.IO", "System.Linq", "System.Net.Http", "System.Net.Http.Json",
        "System.Threading", "System.Threading.Tasks", "Microsoft.AspNetCore.Builder", "Microsoft.AspNetCore.Hosting",
        "Microsoft.AspNetCore.Http", "Microsoft.AspNetCore.Routing", "Microsoft.Extensions.Configuration",
        "Microsoft.Extensions.DependencyInjection", "Microsoft.Extensions.Hosting", "Microsoft.Extensions.Logging",
    ];

    private static readonly Lazy<IReadOnlyList<MetadataReference>> References = new(LoadReferences);

    /// <summary>The compiler's errors for <paramref name="snippet"/>, as <c>file(line,col): error CSxxxx: message</c>.</summary>
    public static IReadOnlyList<string> Errors(Snippet snippet)
    {
        ArgumentNullException.ThrowIfNull(snippet);
        return [.. Compilation(snippet, "Snippet").GetDiagnostics()
            .Where(d => d.Severity == DiagnosticSeverity.Error)
            .Select(d => d.ToString())];
    }

    /// <summary>
    /// Compiles <paramref name="snippet"/> to <c>assemblyName.dll</c> in <paramref name="directory"/>, ready to start with
    /// <c>dotnet exec</c>; throws with the compiler's errors if it does not compile.
    /// </summary>
    public static string Emit(Snippet snippet, string assemblyName, string directory)
    {
        ArgumentNullException.ThrowIfNull(snippet);
        var path = Path.Combine(directory, assemblyName + ".dll");
        using (var output = File.Create(path))
        {
            var result = Compilation(snippet, assemblyName).Emit(output);
            if (!result.Success)
            {
                throw new InvalidOperationException($"{snippet.Id} does not compile:\n{string.Join('\n', result.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error))}");
            }
        }

        return path;
    }

    private static CSharpCompilation Compilation(Snippet snippet, string assemblyName)
    {
        var tree = CSharpSyntaxTree.ParseText(Source(snippet), new CSharpParseOptions(LanguageVersion.Latest), path: "snippet.cs", encoding: System.Text.Encoding.UTF8);
        return CSharpCompilation.Create(
            assemblyName,
            [tree],
            References.Value,
            new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
    }

    /// <summary>The program compiled for <paramref name="snippet"/>: usings, the preamble, the snippet (with <c>#line</c> mapping), declarations.</summary>
    public static string Source(Snippet snippet)
    {
        ArgumentNullException.ThrowIfNull(snippet);
        var parts = snippet.Preamble.Select(name => Preambles.All.TryGetValue(name, out var part)
            ? part
            : throw new InvalidOperationException($"{snippet.Id}: unknown preamble '{name}'; known: {string.Join(", ", Preambles.All.Keys)}.")).ToList();

        // using directives must come first, so the snippet's own leading usings are lifted above the preamble.
        var lines = snippet.Code.Split('\n');
        var usings = 0;
        while (usings < lines.Length && IsUsingOrBlank(lines[usings]))
        {
            usings++;
        }

        var text = new System.Text.StringBuilder();
        foreach (var ns in WebSdkUsings)
        {
            text.Append("global using global::").Append(ns).Append(";\n");
        }

        text.Append($"#line {snippet.Line} \"{snippet.File}\"\n");
        foreach (var line in lines[..usings])
        {
            text.Append(line).Append('\n');
        }

        text.Append("#line hidden\n");
        foreach (var part in parts)
        {
            text.Append(part.Before).Append('\n');
        }

        text.Append($"#line {snippet.Line + usings} \"{snippet.File}\"\n");
        foreach (var line in lines[usings..])
        {
            text.Append(line).Append('\n');
        }

        text.Append("#line hidden\n");
        foreach (var part in parts)
        {
            text.Append(part.After).Append('\n');
        }

        return text.ToString();
    }

    private static bool IsUsingOrBlank(string line)
    {
        var comment = line.IndexOf("//", StringComparison.Ordinal);
        var trimmed = (comment > 0 ? line[..comment] : line).Trim();
        return trimmed.Length == 0
            || trimmed.StartsWith("//", StringComparison.Ordinal)
            || (trimmed.StartsWith("using ", StringComparison.Ordinal) && !trimmed.StartsWith("using var ", StringComparison.Ordinal)
                && !trimmed.Contains('(', StringComparison.Ordinal) && trimmed.EndsWith(';'));
    }

    private static IReadOnlyList<MetadataReference> LoadReferences()
    {
        // Written by the WriteSnippetReferences target: exactly what this project compiles against.
        var list = Path.Combine(AppContext.BaseDirectory, "snippet-references.txt");
        return [.. File.ReadAllLines(list)
            .Where(path => path.Length > 0)
            .Distinct(StringComparer.Ordinal)
            .Select(path => MetadataReference.CreateFromFile(path))];
    }
}
