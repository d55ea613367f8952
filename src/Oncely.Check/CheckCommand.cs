using System.CommandLine;
using System.Text;
using Oncely.Check.Reports;

namespace Oncely.Check;

/// <summary>
/// <c>oncely-check &lt;url&gt; …</c>: reads the command line, runs the checks and writes the reports. Exit code 0 when
/// no check failed, 1 when one did, 2 for a usage error or when the server cannot be reached.
/// </summary>
internal static class CheckCommand
{
    public const int Passed = 0;
    public const int Failed = 1;
    public const int UsageOrConnectionError = 2;

    private static readonly Argument<string> UrlArgument = new("url") { Description = "The effectful endpoint to check (http or https), e.g. https://api.example.com/payments." };
    private static readonly Option<string> MethodOption = new("--method") { Description = "The HTTP method of the effectful request.", DefaultValueFactory = _ => "POST" };
    private static readonly Option<string[]> HeaderOption = new("--header", "-H") { Description = "A header of every request, \"Name: value\" (repeatable), e.g. the caller's credentials. Values never appear in output.", Arity = ArgumentArity.ZeroOrMore };
    private static readonly Option<string> BodyOption = new("--body", "-d") { Description = "The request body: JSON text, or @file to read a file." };
    private static readonly Option<string> OtherBodyOption = new("--other-body") { Description = "A different payload for the same operation (JSON or @file). Default: the body with its first number incremented (or, with none, its first string changed)." };
    private static readonly Option<string> KeyHeaderOption = new("--key-header") { Description = "The idempotency key header.", DefaultValueFactory = _ => "Idempotency-Key" };
    private static readonly Option<string> KeyFormatOption = new("--key-format") { Description = "How keys are written: sf-string (\"key\", the draft's syntax) or bare (key).", DefaultValueFactory = _ => "sf-string" };
    private static readonly Option<string[]> SecondHeaderOption = new("--second-header") { Description = "A header of a second caller (repeatable), e.g. another tenant's credentials: checks that keys are scoped by caller.", Arity = ArgumentArity.ZeroOrMore };
    private static readonly Option<string> EffectsUrlOption = new("--effects-url") { Description = "A GET that answers the number of effects performed (a number, or a JSON array whose length is the number), sent with --header: executions are counted, not inferred." };
    private static readonly Option<int> ConcurrencyOption = new("--concurrency") { Description = "How many copies of one key are sent at once (2 to 64).", DefaultValueFactory = _ => 8 };
    private static readonly Option<string> ReportOption = new("--report") { Description = "Write a Markdown report to this file." };
    private static readonly Option<string> JsonOption = new("--json") { Description = "Write a JSON report to this file." };
    private static readonly Option<string> JUnitOption = new("--junit") { Description = "Write a JUnit XML report to this file (one test case per check)." };
    private static readonly Option<double> TimeoutOption = new("--timeout") { Description = "Seconds to wait for each answer (0.1 to 300).", DefaultValueFactory = _ => 10 };
    private static readonly Option<int> MaxRequestsOption = new("--max-requests") { Description = "The most requests a run may send, effects reads included; a larger plan is refused before anything is sent.", DefaultValueFactory = _ => 100 };
    private static readonly Option<bool> DryRunOption = new("--dry-run") { Description = "Print the requests a run would send, and send nothing." };
    private static readonly Option<bool> NoColorOption = new("--no-color") { Description = "No ANSI colour (also when NO_COLOR is set or the output is not a terminal)." };

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, bool? terminal = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        var root = new RootCommand("oncely-check: checks that an HTTP endpoint taking an Idempotency-Key makes retries safe (draft-ietf-httpapi-idempotency-key-header).")
        {
            UrlArgument, MethodOption, HeaderOption, BodyOption, OtherBodyOption, KeyHeaderOption, KeyFormatOption, SecondHeaderOption, EffectsUrlOption,
            ConcurrencyOption, ReportOption, JsonOption, JUnitOption, TimeoutOption, MaxRequestsOption, DryRunOption, NoColorOption,
        };
        var exitCode = Passed;
        root.SetAction(async (parse, token) => exitCode = await ExecuteAsync(parse, output, error, terminal, token).ConfigureAwait(false));
        // No response files: "@file" is --body's own syntax (read the body from a file), not a list of arguments.
        var parsed = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        if (parsed.Errors.Count > 0)
        {
            foreach (var problem in parsed.Errors)
            {
                await error.WriteLineAsync("oncely-check: " + problem.Message).ConfigureAwait(false);
            }

            await error.WriteLineAsync("Run oncely-check --help for the options.").ConfigureAwait(false);
            return UsageOrConnectionError;
        }

        var invoked = await parsed.InvokeAsync(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false }, cancellationToken).ConfigureAwait(false);
        return invoked != 0 ? invoked : exitCode;
    }

    private static async Task<int> ExecuteAsync(ParseResult parse, TextWriter output, TextWriter error, bool? terminal, CancellationToken cancellationToken)
    {
        CheckSettings settings;
        try
        {
            settings = Read(parse, terminal);
        }
        catch (UsageException e)
        {
            await error.WriteLineAsync("oncely-check: " + e.Message).ConfigureAwait(false);
            return UsageOrConnectionError;
        }

        var plan = new CheckPlan(settings);
        if (plan.RequestCount > settings.MaxRequests)
        {
            await error.WriteLineAsync(Text.Invariant($"oncely-check: this run sends {plan.RequestCount} requests, more than --max-requests {settings.MaxRequests}; raise it or lower --concurrency.")).ConfigureAwait(false);
            return UsageOrConnectionError;
        }

        if (settings.DryRun)
        {
            await WriteDryRunAsync(settings, plan, output).ConfigureAwait(false);
            return Passed;
        }

        CheckReport report;
        using (var probe = new Probe(settings))
        {
            try
            {
                report = await new ConformanceRun(settings, plan, probe, TimeProvider.System).RunAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (CheckAbortedException e)
            {
                await error.WriteLineAsync("oncely-check: " + e.Message).ConfigureAwait(false);
                return UsageOrConnectionError;
            }
        }

        TerminalReport.Write(report, output, settings.Color);
        try
        {
            if (settings.MarkdownPath is { } markdown)
            {
                await File.WriteAllTextAsync(markdown, MarkdownReport.Render(report), new UTF8Encoding(false), cancellationToken).ConfigureAwait(false);
            }

            if (settings.JsonPath is { } json)
            {
                using var file = File.Create(json);
                JsonReport.Write(report, file);
            }

            if (settings.JUnitPath is { } junit)
            {
                using var file = File.Create(junit);
                JUnitReport.Write(report, file);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            await error.WriteLineAsync("oncely-check: cannot write a report: " + e.Message).ConfigureAwait(false);
            return UsageOrConnectionError;
        }

        return report.Failed ? Failed : Passed;
    }

    private static async Task WriteDryRunAsync(CheckSettings settings, CheckPlan plan, TextWriter output)
    {
        await output.WriteLineAsync(Text.Invariant($"oncely-check --dry-run: {plan.RequestCount} requests would be sent to {settings.Url.GetLeftPart(UriPartial.Authority)}{(settings.EffectsUrl is { } effects && effects.GetLeftPart(UriPartial.Authority) != settings.Url.GetLeftPart(UriPartial.Authority) ? " and " + effects.GetLeftPart(UriPartial.Authority) : string.Empty)}; nothing was sent.")).ConfigureAwait(false);
        if (settings.OtherBodyChange is { } change)
        {
            await output.WriteLineAsync("other body: changed " + change).ConfigureAwait(false);
        }

        var index = 0;
        foreach (var request in plan.EndpointRequests())
        {
            await output.WriteLineAsync(Text.Invariant($"{++index,3}. [{request.Label}] {request.Describe(settings)}")).ConfigureAwait(false);
        }

        if (plan.EffectsRead("reads") is { } read)
        {
            await output.WriteLineAsync(Text.Invariant($"  +  {CheckPlan.EffectsReads} × [effects] {read.Describe(settings)} (before and after each step that may execute)")).ConfigureAwait(false);
        }
    }

    private static CheckSettings Read(ParseResult parse, bool? terminal)
    {
        var url = ParseUrl(parse.GetValue(UrlArgument)!, "<url>");
        var effects = parse.GetValue(EffectsUrlOption) is { } effectsText ? ParseUrl(effectsText, "--effects-url") : null;
        var method = (parse.GetValue(MethodOption) ?? "POST").Trim().ToUpperInvariant();
        if (method.Length == 0 || method.Any(c => !char.IsAsciiLetterUpper(c) && c != '-'))
        {
            throw new UsageException($"--method \"{method}\" is not an HTTP method: give POST, PATCH, PUT…");
        }

        var body = parse.GetValue(BodyOption) is { } bodyText ? ReadBody(bodyText, "--body") : null;
        var otherBody = parse.GetValue(OtherBodyOption) is { } otherText ? ReadBody(otherText, "--other-body") : null;
        string? change = null;
        if (otherBody is null && body is not null && OtherBody.Derive(body) is { } derived)
        {
            (otherBody, change) = derived;
        }
        else if (otherBody is not null)
        {
            change = "the whole body (--other-body)";
            if (body is not null && otherBody.AsSpan().SequenceEqual(body))
            {
                throw new UsageException("--other-body is the same as --body: give a different payload for the same operation.");
            }
        }

        var keyHeader = (parse.GetValue(KeyHeaderOption) ?? "Idempotency-Key").Trim();
        if (keyHeader.Length == 0 || keyHeader.Any(c => c is <= ' ' or > '~' or ':'))
        {
            throw new UsageException($"--key-header \"{keyHeader}\" is not a header name.");
        }

        var keyFormat = (parse.GetValue(KeyFormatOption) ?? "sf-string").Trim().ToLowerInvariant() switch
        {
            "sf-string" or "string" or "quoted" => KeyFormat.SfString,
            "bare" or "token" => KeyFormat.Bare,
            var other => throw new UsageException($"--key-format \"{other}\": give sf-string or bare."),
        };

        var concurrency = parse.GetValue(ConcurrencyOption);
        if (concurrency is < 2 or > 64)
        {
            throw new UsageException(Text.Invariant($"--concurrency {concurrency}: give 2 to 64."));
        }

        var timeout = parse.GetValue(TimeoutOption);
        if (double.IsNaN(timeout) || timeout < 0.1 || timeout > 300)
        {
            throw new UsageException(Text.Invariant($"--timeout {timeout}: give 0.1 to 300 seconds."));
        }

        var maxRequests = parse.GetValue(MaxRequestsOption);
        if (maxRequests < 1)
        {
            throw new UsageException(Text.Invariant($"--max-requests {maxRequests}: give at least 1."));
        }

        var color = terminal ?? !Console.IsOutputRedirected;
        color = color && !parse.GetValue(NoColorOption) && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NO_COLOR"));
        return new CheckSettings
        {
            Url = url,
            Method = new HttpMethod(method),
            Headers = Headers(parse.GetValue(HeaderOption), "--header"),
            Body = body,
            OtherBody = otherBody,
            OtherBodyChange = change,
            KeyHeader = keyHeader,
            KeyFormat = keyFormat,
            SecondHeaders = Headers(parse.GetValue(SecondHeaderOption), "--second-header"),
            EffectsUrl = effects,
            Concurrency = concurrency,
            MarkdownPath = parse.GetValue(ReportOption),
            JsonPath = parse.GetValue(JsonOption),
            JUnitPath = parse.GetValue(JUnitOption),
            Timeout = TimeSpan.FromSeconds(timeout),
            MaxRequests = maxRequests,
            DryRun = parse.GetValue(DryRunOption),
            Color = color,
        };
    }

    private static Uri ParseUrl(string text, string what)
        => Uri.TryCreate(text, UriKind.Absolute, out var url) && (url.Scheme == Uri.UriSchemeHttp || url.Scheme == Uri.UriSchemeHttps)
            ? url
            : throw new UsageException($"{what} \"{text}\" is not an absolute http:// or https:// URL.");

    private static List<HeaderLine> Headers(string[]? lines, string what)
    {
        var headers = new List<HeaderLine>();
        foreach (var line in lines ?? [])
        {
            headers.Add(HeaderLine.Parse(line) ?? throw new UsageException($"{what} \"{line}\" is not \"Name: value\"."));
        }

        return headers;
    }

    private static byte[] ReadBody(string text, string what)
    {
        if (!text.StartsWith('@'))
        {
            return Encoding.UTF8.GetBytes(text);
        }

        try
        {
            return File.ReadAllBytes(text[1..]);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new UsageException($"{what} {text}: cannot read the file ({e.Message}).");
        }
    }

    private sealed class UsageException(string message) : Exception(message);
}
