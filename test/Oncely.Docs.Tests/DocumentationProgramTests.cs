using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Oncely.MassTransit.Tests.Infrastructure;
using Oncely.PostgreSql.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Oncely.Docs.Tests;

/// <summary>
/// Every whole program of the documentation (a <c>```csharp</c> block whose statements end in <c>app.Run();</c>) is
/// compiled, started in its own process on a loopback port, and answers the requests its document describes. Each
/// whole program names its scenario here with <c>&lt;!-- snippet: program=name --&gt;</c> on the line before its fence;
/// a whole program without one, or a scenario without its program, fails
/// <see cref="Documentation_EveryWholeProgramIsStartedByAScenario"/>.
/// </summary>
public sealed partial class DocumentationProgramTests(ITestOutputHelper output, DocumentationProgramTests.Servers servers)
    : IClassFixture<DocumentationProgramTests.Servers>
{
    private const string Payment = """{"amount":250,"currency":"EUR"}""";

    /// <summary>What each program is asked, keyed by its <c>program=</c> name.</summary>
    private static readonly IReadOnlyDictionary<string, Func<ProgramRun, Task>> Scenarios = new Dictionary<string, Func<ProgramRun, Task>>(StringComparer.Ordinal)
    {
        ["readme-use-it"] = ReadmeUseItAsync,
        ["aspnetcore-readme"] = AspNetCoreReadmeAsync,
        ["decision-table"] = run => PaymentOnceThenReplayAsync(run, "/payments"),
        ["data-protection"] = run => PaymentOnceThenReplayAsync(run, "/payments"),
        ["operator-api"] = OperatorApiAsync,
        ["configuration"] = ConfigurationAsync,
        ["payments-own-api"] = PaymentsOwnApiAsync,
        ["webhooks"] = WebhooksAsync,
        ["webhook-receiver"] = WebhookReceiverAsync,
        ["messages-worker"] = MessagesWorkerAsync,
    };

    // (program name, where it is): the test's name says which page and block it started.
    public static TheoryData<string, string> Programs()
    {
        var data = new TheoryData<string, string>();
        foreach (var snippet in WholePrograms())
        {
            data.Add(snippet.Program ?? snippet.Id, snippet.Id);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Programs))]
    public async Task Program_StartsAndAnswersAsDocumented(string program, string snippetAt)
    {
        var snippet = WholePrograms().Single(s => (s.Program ?? s.Id) == program);
        Assert.True(
            Scenarios.TryGetValue(program, out var scenario),
            $"{snippet.Id} is a whole program (it ends in app.Run()) but nothing starts it: put <!-- snippet: program=NAME --> on the line before its fence and add NAME to {nameof(DocumentationProgramTests)}.{nameof(Scenarios)}.");

        output.WriteLine($"program={program}: {snippetAt}");
        await using var run = new ProgramRun(snippet, servers, output);
        await scenario(run);
    }

    [Fact]
    public void Documentation_EveryWholeProgramIsStartedByAScenario()
    {
        var all = MarkdownSnippets.DocumentationFiles(DocumentationSnippetTests.Root).SelectMany(f => MarkdownSnippets.Read(DocumentationSnippetTests.Root, f)).ToList();
        var programs = all.Where(s => s.IsWholeProgram).ToList();

        Assert.All(programs, s => Assert.True(s.Program is not null, $"{s.Id} ends in app.Run() but has no <!-- snippet: program=NAME --> naming the scenario that starts it."));
        Assert.All(all.Where(s => s.Program is not null && !s.IsWholeProgram), s => Assert.Fail($"{s.Id} is named program={s.Program} but is not a whole program (no top-level app.Run();)."));
        Assert.All(programs.GroupBy(s => s.Program), g => Assert.True(g.Count() == 1, $"program={g.Key} names {string.Join(", ", g.Select(s => s.Id))}: one name per program."));
        Assert.Equal(Scenarios.Keys.Order(StringComparer.Ordinal), programs.Select(s => s.Program!).Order(StringComparer.Ordinal));
        Assert.Contains(programs, s => s.File == "README.md");
    }

    private static IEnumerable<Snippet> WholePrograms()
        => MarkdownSnippets.DocumentationFiles(DocumentationSnippetTests.Root)
            .SelectMany(f => MarkdownSnippets.Read(DocumentationSnippetTests.Root, f))
            .Where(s => s.IsWholeProgram);

    // README.md "Use it": the curl transcript, call by call, with the answers it promises.
    private static async Task ReadmeUseItAsync(ProgramRun run)
    {
        var jwts = new UserJwts();
        var app = await run.StartAsync(jwts.Configuration);
        var token = jwts.Create("alice");
        using var client = app.CreateClient();

        using var first = await PayAsync(client, token, "order-1", Payment);
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.False(first.Headers.Contains("Idempotent-Replayed"));
        Assert.StartsWith("/payments/", first.Headers.Location?.OriginalString, StringComparison.Ordinal);
        var firstBody = await first.Content.ReadAsStringAsync();
        Assert.Equal(Payment, firstBody);

        using var replay = await PayAsync(client, token, "order-1", Payment);
        Assert.Equal(HttpStatusCode.Created, replay.StatusCode);
        Assert.Equal("true", Header(replay, "Idempotent-Replayed"));
        Assert.Equal(first.Headers.Location, replay.Headers.Location);
        Assert.Equal(firstBody, await replay.Content.ReadAsStringAsync());

        await ConcurrentDuplicateAsync(client, token, Path.Combine(app.WorkingDirectory, "app.db"));

        await RefusalsAsync(client, token);

        using var anonymous = await PayAsync(client, token: null, "order-4", Payment);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        using var badToken = await PayAsync(client, "garbage", "order-4", Payment);
        Assert.Equal(HttpStatusCode.Unauthorized, badToken.StatusCode);
    }

    // The transcript's "&": a second request while the first (its handler takes 2 s) still runs. The second is sent only
    // once the first's record is in app.db (reserved, InProgress), so it meets the record in flight. Only a machine so slow
    // that the second took longer than the first's 2 s handler sees the first completed (a replay): that attempt proves
    // nothing and is repeated with a new key, three times at most; any other answer fails.
    private static async Task ConcurrentDuplicateAsync(HttpClient client, string token, string database)
    {
        for (var attempt = 1; attempt <= 3; attempt++)
        {
            var key = attempt == 1 ? "order-2" : $"order-2-again-{attempt}"; // the README's key, then fresh ones
            var records = await CountRecordsAsync(database);
            var firstTask = PayAsync(client, token, key, """{"amount":90,"currency":"EUR"}""");
            await WaitUntilAsync(async () => await CountRecordsAsync(database) > records, $"the record of {key} in {database}");

            using var second = await PayAsync(client, token, key, """{"amount":90,"currency":"EUR"}""");
            using var first = await firstTask;
            Assert.Equal(HttpStatusCode.Created, first.StatusCode);
            if (second.StatusCode == HttpStatusCode.Created && Header(second, "Idempotent-Replayed") == "true")
            {
                continue;
            }

            Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);
            Assert.Equal(TimeSpan.FromSeconds(1), second.Headers.RetryAfter?.Delta);
            Assert.EndsWith("idempotency-request-in-progress", await ProblemTypeAsync(second), StringComparison.Ordinal);

            using var retried = await PayAsync(client, token, key, """{"amount":90,"currency":"EUR"}""");
            Assert.Equal(HttpStatusCode.Created, retried.StatusCode);
            Assert.Equal("true", Header(retried, "Idempotent-Replayed"));
            Assert.Equal(first.Headers.Location, retried.Headers.Location);
            return;
        }

        Assert.Fail("Three times the duplicate, sent once the first request's record was reserved, was answered as a replay: the first had "
            + "already completed. The README promises a 409 for a duplicate sent while the first still runs (its handler takes 2 s).");
    }

    // The transcript's 422 and 400s ("order-1" was already used with {"amount":250,...}).
    private static async Task RefusalsAsync(HttpClient client, string token)
    {
        using var reused = await PayAsync(client, token, "order-1", """{"amount":999,"currency":"EUR"}""");
        Assert.Equal((HttpStatusCode)422, reused.StatusCode);
        Assert.EndsWith("idempotency-key-reused", await ProblemTypeAsync(reused), StringComparison.Ordinal);

        using var missing = await PayAsync(client, token, key: null, Payment);
        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
        Assert.EndsWith("idempotency-key-missing", await ProblemTypeAsync(missing), StringComparison.Ordinal);

        using var malformed = await PayAsync(client, token, "order 3", Payment);
        Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
        Assert.EndsWith("idempotency-key-invalid", await ProblemTypeAsync(malformed), StringComparison.Ordinal);
    }

    // src/Oncely.AspNetCore/README.md: 201, the replay, then the refusals its "Try it" lists.
    private static async Task AspNetCoreReadmeAsync(ProgramRun run)
    {
        var jwts = new UserJwts();
        var app = await run.StartAsync(jwts.Configuration);
        using var client = app.CreateClient();
        var token = jwts.Create("alice");
        await RunsOnceThenReplaysAsync(client, "/payments", token, "order-1");
        await RefusalsAsync(client, token);
    }

    private static async Task PaymentOnceThenReplayAsync(ProgramRun run, string path)
    {
        var jwts = new UserJwts();
        var app = await run.StartAsync(jwts.Configuration);
        using var client = app.CreateClient();
        await RunsOnceThenReplaysAsync(client, path, jwts.Create("alice"), "order-1");
    }

    private static async Task OperatorApiAsync(ProgramRun run)
    {
        var jwts = new UserJwts();
        var app = await run.StartAsync(jwts.Configuration);
        using var client = app.CreateClient();
        await RunsOnceThenReplaysAsync(client, "/payments", jwts.Create("alice"), "order-1");

        using var asOperator = await GetAsync(client, "/admin/idempotency/records", jwts.Create("olga", "operator"));
        Assert.Equal(HttpStatusCode.OK, asOperator.StatusCode);
        using (var listing = JsonDocument.Parse(await asOperator.Content.ReadAsStringAsync()))
        {
            Assert.Contains(listing.RootElement.GetProperty("records").EnumerateArray(), r => r.GetProperty("key").GetString() == "order-1");
        }

        using var asCustomer = await GetAsync(client, "/admin/idempotency/records", jwts.Create("alice"));
        Assert.Equal(HttpStatusCode.Forbidden, asCustomer.StatusCode);
    }

    private static async Task ConfigurationAsync(ProgramRun run)
    {
        var postgres = await run.Servers.PostgresAsync();
        var database = await postgres.CreateDatabaseAsync("docs_configuration");
        var jwts = new UserJwts();
        var configuration = new Dictionary<string, string>(jwts.Configuration) { ["ConnectionStrings:Payments"] = postgres.ConnectionString(database) };

        // The appsettings.json the page shows just before the program, with the connection string replaced.
        var app = await run.StartAsync(configuration, ("appsettings.json", JsonBlockBefore(run.Snippet)));
        using var client = app.CreateClient();
        await RunsOnceThenReplaysAsync(client, "/payments", jwts.Create("alice"), "order-1");
        await RunsOnceThenReplaysAsync(client, "/webhooks/psp", token: null, "evt-1");
    }

    private static async Task PaymentsOwnApiAsync(ProgramRun run)
    {
        var postgres = await run.Servers.PostgresAsync();
        var database = await postgres.CreateDatabaseAsync("docs_payments_own_api");
        var jwts = new UserJwts();
        var configuration = new Dictionary<string, string>(jwts.Configuration) { ["ConnectionStrings:Payments"] = postgres.ConnectionString(database) };
        var app = await run.StartAsync(configuration);
        using var client = app.CreateClient();

        await RunsOnceThenReplaysAsync(client, "/payments", jwts.Create("alice"), "order-1", expectBody: false);

        // Once: one row in the business table for the two requests.
        await using var dataSource = postgres.CreateDataSource(database);
        await using var count = dataSource.CreateCommand("SELECT count(*) FROM payments");
        Assert.Equal(1L, await count.ExecuteScalarAsync());
    }

    private static async Task WebhooksAsync(ProgramRun run)
    {
        var jwts = new UserJwts();
        var acme = NewSecret();
        var globex = NewSecret();
        var configuration = new Dictionary<string, string>(jwts.Configuration)
        {
            ["Webhooks:AcmePay:Secret"] = acme,
            ["Webhooks:Globex:Secret"] = globex,
        };
        var app = await run.StartAsync(configuration);
        using var client = app.CreateClient();
        const string Settled = """{"type":"settlement.succeeded","data":{"id":"set_1","amount":500}}""";

        // acme-pay: the key is webhook-id.
        using var first = await client.SendAsync(StandardWebhooksSender.Delivery("/webhooks/acme-pay", acme, "msg_1", Settled));
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.False(first.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal("""{"received":"set_1"}""", await first.Content.ReadAsStringAsync());
        using var redelivered = await client.SendAsync(StandardWebhooksSender.Delivery("/webhooks/acme-pay", acme, "msg_1", Settled));
        Assert.Equal(HttpStatusCode.OK, redelivered.StatusCode);
        Assert.Equal("true", Header(redelivered, "Idempotent-Replayed"));
        Assert.Equal("""{"received":"set_1"}""", await redelivered.Content.ReadAsStringAsync());

        // Signed with another sender's secret: refused before the store.
        using var forged = await client.SendAsync(StandardWebhooksSender.Delivery("/webhooks/acme-pay", globex, "msg_2", Settled));
        Assert.Equal(HttpStatusCode.Unauthorized, forged.StatusCode);

        // globex: a new webhook-id per attempt, the key is /data/id.
        using var attempt1 = await client.SendAsync(StandardWebhooksSender.Delivery("/webhooks/globex", globex, "msg_a", Settled));
        Assert.Equal(HttpStatusCode.OK, attempt1.StatusCode);
        Assert.False(attempt1.Headers.Contains("Idempotent-Replayed"));
        using var attempt2 = await client.SendAsync(StandardWebhooksSender.Delivery("/webhooks/globex", globex, "msg_b", Settled));
        Assert.Equal(HttpStatusCode.OK, attempt2.StatusCode);
        Assert.Equal("true", Header(attempt2, "Idempotent-Replayed"));
    }

    private static async Task WebhookReceiverAsync(ProgramRun run)
    {
        // The secret the page's program is written with.
        var secret = Secret().Match(run.Snippet.Code) is { Success: true } m ? m.Value : throw new InvalidOperationException($"{run.Snippet.Id} names no whsec_ secret.");
        var app = await run.StartAsync(new Dictionary<string, string>());
        using var client = app.CreateClient();
        const string Settled = """{"type":"settlement.succeeded","data":{"id":"set_9","amount":700}}""";

        using var first = await client.SendAsync(StandardWebhooksSender.Delivery("/webhooks/settlements", secret, "msg_1", Settled));
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.False(first.Headers.Contains("Idempotent-Replayed"));
        using var redelivered = await client.SendAsync(StandardWebhooksSender.Delivery("/webhooks/settlements", secret, "msg_1", Settled));
        Assert.Equal(HttpStatusCode.OK, redelivered.StatusCode);
        Assert.Equal("true", Header(redelivered, "Idempotent-Replayed"));
    }

    // POST with a key: 201 from the handler, then the same request: 201 replayed with the same Location (and body).
    private static async Task RunsOnceThenReplaysAsync(HttpClient client, string path, string? token, string key, bool expectBody = true)
    {
        using var first = await PayAsync(client, token, key, Payment, path);
        var firstBody = await first.Content.ReadAsStringAsync();
        Assert.True(first.StatusCode == HttpStatusCode.Created, $"POST {path} (key {key}): {(int)first.StatusCode} {firstBody}");
        Assert.False(first.Headers.Contains("Idempotent-Replayed"));
        if (expectBody)
        {
            Assert.Equal(Payment, firstBody);
        }

        using var replay = await PayAsync(client, token, key, Payment, path);
        Assert.Equal(HttpStatusCode.Created, replay.StatusCode);
        Assert.Equal("true", Header(replay, "Idempotent-Replayed"));
        Assert.Equal(first.Headers.Location, replay.Headers.Location);
        Assert.Equal(firstBody, await replay.Content.ReadAsStringAsync());
    }

    private static Task<HttpResponseMessage> PayAsync(HttpClient client, string? token, string? key, string json, string path = "/payments")
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        if (key is not null)
        {
            request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
        }

        return client.SendAsync(request);
    }

    private static Task<HttpResponseMessage> GetAsync(HttpClient client, string path, string token)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client.SendAsync(request);
    }

    private static string? Header(HttpResponseMessage response, string name)
        => response.Headers.TryGetValues(name, out var values) ? string.Join(",", values) : null;

    private static async Task<string> ProblemTypeAsync(HttpResponseMessage response)
    {
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return problem.RootElement.GetProperty("type").GetString() ?? string.Empty;
    }

    private static Task<long> CountRecordsAsync(string database) => CountRowsAsync(database, "oncely_records");

    private static async Task<long> CountRowsAsync(string database, string table)
    {
        if (!File.Exists(database))
        {
            return 0;
        }

        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = database, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT count(*) FROM {table}";
        return (long)(await command.ExecuteScalarAsync())!;
    }

    // Polls a condition that the test's own earlier request makes true; bounded, and the failure names what never happened.
    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!await condition())
        {
            if (timeout.IsCancellationRequested)
            {
                Assert.Fail($"Waited 30 s for {what}.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(20));
        }
    }

    // The last ```json block above the snippet in its page.
    private static string JsonBlockBefore(Snippet snippet)
    {
        var lines = File.ReadAllLines(Path.Combine(DocumentationSnippetTests.Root, snippet.File))[..(snippet.Line - 1)];
        var open = Array.FindLastIndex(lines, l => l.TrimEnd() == "```json");
        Assert.True(open >= 0, $"{snippet.Id}: no ```json block above the program.");
        var close = Array.FindIndex(lines, open + 1, l => l.TrimEnd() == "```");
        return string.Join('\n', lines[(open + 1)..close]);
    }

    private static string NewSecret() => "whsec_" + Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24));

    [System.Text.RegularExpressions.GeneratedRegex("whsec_[A-Za-z0-9+/=]+")]
    private static partial System.Text.RegularExpressions.Regex Secret();

    /// <summary>One scenario's started programs (always stopped at the end) and its report lines.</summary>
    public sealed class ProgramRun(Snippet snippet, Servers servers, ITestOutputHelper output) : IAsyncDisposable
    {
        private readonly List<DocProgram> _started = [];

        public Snippet Snippet { get; } = snippet;

        public Servers Servers { get; } = servers;

        public async Task<DocProgram> StartAsync(IReadOnlyDictionary<string, string> configuration, params (string Name, string Text)[] files)
        {
            var program = await DocProgram.StartAsync(Snippet, configuration, files);
            _started.Add(program);
            output.WriteLine($"started {Snippet.Id} {(program.Address is { } address ? $"on {address}" : "(a worker)")}");
            return program;
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var program in _started)
            {
                var log = program.Output;
                await program.DisposeAsync();
                output.WriteLine($"--- output of {Snippet.Id} ---\n{log}");
            }
        }
    }

    /// <summary>Servers the programs need, started on first use and stopped after the last program.</summary>
    public sealed class Servers : IAsyncLifetime
    {
        private readonly SemaphoreSlim _gate = new(1, 1);
        private PostgresServer? _postgres;
        private RabbitMqServer? _rabbitMq;

        /// <summary>A throw-away PostgreSQL server (test/Oncely.PostgreSql.Tests/Infrastructure/PostgresServer.cs).</summary>
        public async Task<PostgresServer> PostgresAsync()
        {
            await _gate.WaitAsync();
            try
            {
                return _postgres ??= await PostgresServer.StartNewAsync();
            }
            finally
            {
                _gate.Release();
            }
        }

        /// <summary>A throw-away RabbitMQ broker (test/Oncely.MassTransit.Tests/Infrastructure/RabbitMqServer.cs).</summary>
        public async Task<RabbitMqServer> RabbitMqAsync()
        {
            await _gate.WaitAsync();
            try
            {
                return _rabbitMq ??= await RabbitMqServer.StartNewAsync();
            }
            finally
            {
                _gate.Release();
            }
        }

        public Task InitializeAsync() => Task.CompletedTask;

        public async Task DisposeAsync()
        {
            if (_postgres is not null)
            {
                await _postgres.DisposeAsync();
            }

            if (_rabbitMq is not null)
            {
                await _rabbitMq.DisposeAsync();
            }

            _gate.Dispose();
        }
    }
}
