using System.Diagnostics;
using System.Globalization;
using Oncely.AspNetCore;

namespace Oncely.LoadTest;

/// <summary>What a request to the server under test looks like: wrk sends it with a new or a replayed key each time.</summary>
internal sealed record RequestShape(string Method, string Path, string Body, IReadOnlyList<string> Headers);

/// <summary>What one wrk run reported through <c>wrk/payments.lua</c>'s <c>done()</c>.</summary>
internal sealed record WrkRun(
    double Seconds,
    long Responses,
    long Sent,
    long Ok,
    long NonSuccess,
    long Replayed,
    long SocketErrors,
    double P50Milliseconds,
    double P90Milliseconds,
    double P99Milliseconds,
    string FirstFailure)
{
    public double PerSecond => Seconds > 0 ? Ok / Seconds : 0;
}

/// <summary>Runs the external load generator, <c>wrk</c>, as a child process and parses its machine-readable lines.</summary>
internal static class Wrk
{
    public static readonly string Script = Path.Combine(AppContext.BaseDirectory, "wrk", "payments.lua");

    /// <summary>Runs wrk against <paramref name="baseAddress"/> with <paramref name="connections"/> connections on min(c, 2) threads.</summary>
    /// <param name="mode"><c>execute</c> (a new key per request) or <c>replay</c> (keys <paramref name="keyPrefix"/>0 … <paramref name="keyCount"/>−1 in turn).</param>
    public static async Task<WrkRun> RunAsync(Uri baseAddress, RequestShape shape, string mode, string keyPrefix, int keyCount, int connections, int seconds)
    {
        var start = new ProcessStartInfo("wrk")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in Arguments(baseAddress, shape, mode, keyPrefix, keyCount, connections, seconds))
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("wrk did not start.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(seconds + 60));
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"wrk did not finish within {seconds + 60} s.");
        }

        var output = await stdout;
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"wrk exited with {process.ExitCode}: {await stderr}{output}");
        }

        return Parse(output);
    }

    /// <summary>The command line, also printed in the report so a reader can run one cell by hand.</summary>
    public static IReadOnlyList<string> Arguments(Uri baseAddress, RequestShape shape, string mode, string keyPrefix, int keyCount, int connections, int seconds)
    {
        var arguments = new List<string>
        {
            "-t", Math.Min(connections, 2).ToString(CultureInfo.InvariantCulture),
            "-c", connections.ToString(CultureInfo.InvariantCulture),
            "-d", seconds.ToString(CultureInfo.InvariantCulture) + "s",
            "--timeout", "30s",
            "-s", Script,
        };
        foreach (var header in shape.Headers)
        {
            arguments.Add("-H");
            arguments.Add(header);
        }

        arguments.AddRange([new Uri(baseAddress, shape.Path).ToString(), "--", mode, keyPrefix, keyCount.ToString(CultureInfo.InvariantCulture), shape.Method, shape.Path, shape.Body, IdempotencyOptions.ReplayedHeaderName]);
        return arguments;
    }

    /// <summary>wrk's version line (<c>wrk -v</c> prints it, then its usage, and exits 1).</summary>
    public static string Version()
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo("wrk", "-v") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false })!;
            var text = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
            process.WaitForExit();
            var first = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault()?.Trim() ?? "unknown";
            var copyright = first.IndexOf(" Copyright", StringComparison.Ordinal);
            return copyright > 0 ? first[..copyright] : first;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "not installed";
        }
    }

    private static WrkRun Parse(string output)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in output.Split('\n'))
        {
            if (line.StartsWith("oncely.", StringComparison.Ordinal))
            {
                var space = line.IndexOf(' ', StringComparison.Ordinal);
                values[space < 0 ? line[7..] : line[7..space]] = space < 0 ? string.Empty : line[(space + 1)..].Trim();
            }
        }

        long Number(string name) => values.TryGetValue(name, out var text) && long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new InvalidOperationException($"wrk's output has no oncely.{name} line:\n{output}");

        return new WrkRun(
            Number("duration_us") / 1e6,
            Number("responses"),
            Number("sent"),
            Number("ok"),
            Number("non2xx"),
            Number("replayed"),
            Number("socket_errors"),
            Number("p50_us") / 1e3,
            Number("p90_us") / 1e3,
            Number("p99_us") / 1e3,
            values.GetValueOrDefault("first_failure", string.Empty));
    }
}
