using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Npgsql;
using Oncely.PostgreSql.Tests.Infrastructure;

namespace Payments.Tests;

/// <summary>
/// Issue 17, item 14: the shell recipes of <c>samples/Payments/README.md</c> (the blocks after a
/// <c>&lt;!-- recipe: name --&gt;</c> line), run as written against the running sample.
/// </summary>
public sealed partial class ReadmeRecipeTests
{
    [Fact]
    public async Task SignASettlement_RecipeRunTwice_200ThenReplayThen401AndCreditedOnce()
    {
        await using var host = await PaymentsHost.StartAsync(kestrel: true);
        var recipe = Recipe("sign-a-settlement");
        var address = host.Address.ToString().TrimEnd('/');

        var first = await RunBashAsync(recipe, ("B", address));
        var second = await RunBashAsync(recipe, ("B", address));

        foreach (var output in new[] { first, second })
        {
            var answers = Answers(output);
            Assert.Equal(["200", "200", "401"], answers.Select(a => a.Status));
            Assert.Contains("\"balance\":700", answers[0].Text, StringComparison.Ordinal);
            Assert.Equal(Body(answers[0].Text), Body(answers[1].Text));
            Assert.Matches(ReplayedHeader(), answers[1].Text);
            Assert.Contains("webhook-signature-invalid", answers[2].Text, StringComparison.Ordinal);
        }

        Assert.DoesNotMatch(ReplayedHeader(), Answers(first)[0].Text);
        Assert.Equal(1, await ScalarAsync(host, "SELECT COUNT(*) FROM settlements WHERE provider_payment = 'card_pay_recipe'"));
        Assert.Equal(700, await ScalarAsync(host, "SELECT SUM(amount) FROM settlements"));
        Assert.True((await host.Ledger.CheckAsync()).IsBalanced);
    }

    [Fact]
    public async Task PostgreSqlSetup_RecipeRunAsWritten_TheSampleRunsAsThatRole()
    {
        await using var server = await PostgresServer.StartNewAsync();
        var recipe = Recipe("postgresql-setup");
        const string Superuser = "sudo -u postgres psql";
        Assert.StartsWith(Superuser, recipe, StringComparison.Ordinal);

        // The throw-away server is not the machine's: its psql, its port, its superuser, in place of "sudo -u postgres psql".
        var psql = Path.Combine(server.BinDirectory, "psql");
        var output = await RunBashAsync(recipe.Replace(Superuser, $"\"{psql}\" -h 127.0.0.1 -p {server.Port} -U postgres -d postgres", StringComparison.Ordinal));
        var connectionString = ReadmeConnectionString().Match(File.ReadAllText(ReadmePath())).Groups["value"].Value;
        var builder = new NpgsqlConnectionStringBuilder(connectionString) { Host = "127.0.0.1", Port = server.Port };
        await using var host = await PaymentsHost.StartAsync(postgreSql: builder.ConnectionString);
        using var client = host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        using var paid = await PaymentsHost.PostAsync(client, "/payments", new { from = alice.Id, to = bob.Id, amount = 250, currency = "EUR" });

        Assert.Contains("CREATE ROLE", output, StringComparison.Ordinal);
        Assert.Equal(("payments", "payments", "secret"), (builder.Database, builder.Username, builder.Password));
        Assert.Equal(HttpStatusCode.Created, paid.StatusCode);
        Assert.Equal(750, (await PaymentsHost.GetAccountAsync(client, alice.Id)).Balance);
        await using var connection = new NpgsqlConnection(server.ConnectionString("payments"));
        await connection.OpenAsync();
        await using var owners = new NpgsqlCommand("SELECT string_agg(DISTINCT schemaname || ':' || tableowner, ',' ORDER BY schemaname || ':' || tableowner) FROM pg_tables WHERE schemaname IN ('public', 'oncely')", connection);
        Assert.Equal("oncely:payments,public:payments", await owners.ExecuteScalarAsync());
    }

    private static string ReadmePath()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var readme = Path.Combine(directory.FullName, "samples", "Payments", "README.md");
            if (File.Exists(readme))
            {
                return readme;
            }
        }

        throw new InvalidOperationException("samples/Payments/README.md was not found above " + AppContext.BaseDirectory);
    }

    // The ```bash block right after "<!-- recipe: name -->".
    private static string Recipe(string name)
    {
        var lines = File.ReadAllLines(ReadmePath());
        var marker = Array.IndexOf(lines, $"<!-- recipe: {name} -->");
        Assert.True(marker >= 0 && lines[marker + 1] == "```bash", $"README.md has no bash block after <!-- recipe: {name} -->");
        var end = Array.FindIndex(lines, marker + 2, line => line == "```");
        return string.Join('\n', lines[(marker + 2)..end]) + "\n";
    }

    private static async Task<string> RunBashAsync(string script, params (string Name, string Value)[] environment)
    {
        var start = new ProcessStartInfo("bash", ["-euo", "pipefail", "-c", script])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, $"The recipe exited with {process.ExitCode}.\n{await output}\n{await error}");
        return await output;
    }

    // Every "HTTP/1.1 nnn" answer curl -si printed, with its headers and body.
    private static List<(string Status, string Text)> Answers(string output)
        => [.. StatusLine().Split(output).Skip(1).Chunk(2).Select(pair => (pair[0], pair[1]))];

    private static string Body(string answer) => answer[(answer.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..].Trim();

    private static async Task<long> ScalarAsync(PaymentsHost host, string sql)
    {
        await using var connection = await host.Ledger.Dialect.OpenAsync(default);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"^HTTP/1\.1 (\d{3})[^\n]*\n", RegexOptions.Multiline)]
    private static partial Regex StatusLine();

    [GeneratedRegex(@"(?im)^Idempotent-Replayed: true\r?$")]
    private static partial Regex ReplayedHeader();

    [GeneratedRegex("--ConnectionStrings:Payments=\"(?<value>[^\"]+)\"")]
    private static partial Regex ReadmeConnectionString();
}
