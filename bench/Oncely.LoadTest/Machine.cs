using System.Globalization;
using System.Runtime;
using System.Runtime.InteropServices;

namespace Oncely.LoadTest;

/// <summary>The machine the run measured on, described plainly for the report.</summary>
internal static class Machine
{
    public static string Describe(string postgresVersion, string wrkVersion, string redisVersion = "not run")
    {
        var cpuinfo = Read("/proc/cpuinfo");
        var model = Field(cpuinfo, "model name", ':') ?? "unknown";
        var memory = Field(Read("/proc/meminfo"), "MemTotal", ':') is { } total && total.EndsWith(" kB", StringComparison.Ordinal)
            && long.TryParse(total[..^3], NumberStyles.Integer, CultureInfo.InvariantCulture, out var kb)
            ? string.Create(CultureInfo.InvariantCulture, $"{kb / 1024.0 / 1024.0:0.0} GiB")
            : "unknown";
        var os = Field(Read("/etc/os-release"), "PRETTY_NAME", '=')?.Trim('"') ?? RuntimeInformation.OSDescription;
        var load = Read("/proc/loadavg").Split(' ') is { Length: >= 3 } parts ? $"{parts[0]} / {parts[1]} / {parts[2]}" : "unknown";
        string sqliteVersion;
        using (var connection = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=:memory:"))
        {
            connection.Open();
            sqliteVersion = connection.ServerVersion;
        }

        return string.Join('\n',
            $"- CPU: {model}; {Environment.ProcessorCount} logical processors (`nproc`), shared with other workloads",
            $"- Memory: {memory}",
            $"- OS: {os}, Linux kernel {Read("/proc/sys/kernel/osrelease").Trim()} ({RuntimeInformation.OSArchitecture})",
            $"- .NET: {RuntimeInformation.FrameworkDescription}, server GC: {GCSettings.IsServerGC}",
            $"- Load generator: {wrkVersion}, a separate process on the same cores",
            $"- SQLite: {sqliteVersion} (WAL, temp file); PostgreSQL: {postgresVersion}",
            $"- Redis: {redisVersion}",
            $"- Load average at start (1 / 5 / 15 min): {load}",
            $"- Run at: {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC");
    }

    private static string Read(string path) => File.Exists(path) ? File.ReadAllText(path) : string.Empty;

    private static string? Field(string text, string name, char separator)
        => text.Split('\n').FirstOrDefault(l => l.StartsWith(name, StringComparison.Ordinal))?.Split(separator, 2) is [_, var value] ? value.Trim() : null;
}
