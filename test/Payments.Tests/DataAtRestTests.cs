using System.Data.Common;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Npgsql;
using Oncely.PostgreSql.Tests.Infrastructure;

namespace Payments.Tests;

/// <summary>
/// The sample protects what Oncely keeps by default (<c>Payments:ProtectStoredAnswers</c>): after a payment, its replay and
/// a refused reuse of its key, no Oncely table holds the payment's reference in clear (the ledger's own table does: it is
/// the business record), the replay is the exact first answer, the operator API shows the refused payload decrypted, and
/// the key ring lives in <c>payments-keys</c> beside the database.
/// </summary>
public sealed class DataAtRestTests : IAsyncLifetime
{
    private PostgresServer? _server;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    [Fact]
    public async Task Sqlite_PaymentAndKeyReuse_OncelyTablesHoldNoPlaintextAnswerOrPayload()
    {
        await using var host = await PaymentsHost.StartAsync();
        var reference = await PayAndReuseAsync(host);

        await using var connection = new SqliteConnection($"Data Source={Path.Combine(host.DataDirectory, "payments.db")}");
        await connection.OpenAsync();
        var oncely = await DumpAsync(connection, "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'oncely%'");
        var ledger = await DumpAsync(connection, "SELECT 'payments'");

        AssertProtected(oncely, ledger, reference);
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(host.DataDirectory, "payments-keys"), "key-*.xml"));
    }

    [Fact]
    public async Task PostgreSql_PaymentAndKeyReuse_OncelyTablesHoldNoPlaintextAnswerOrPayload()
    {
        _server = await PostgresServer.StartNewAsync();
        var database = await _server.CreateDatabaseAsync("payments_at_rest");
        await using var host = await PaymentsHost.StartAsync(postgreSql: _server.ConnectionString(database));
        var reference = await PayAndReuseAsync(host);

        await using var connection = new NpgsqlConnection(_server.ConnectionString(database));
        await connection.OpenAsync();
        var oncely = await DumpAsync(connection, "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE' AND table_name LIKE 'idempotency%'");
        var ledger = await DumpAsync(connection, "SELECT 'payments'");

        AssertProtected(oncely, ledger, reference);
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(host.DataDirectory, "payments-keys"), "key-*.xml"));
    }

    // A payment whose reference is a marker, its replay (exactly the first answer), and a reuse of its key with another
    // reference (422, audited; the operator API shows the refused payload).
    private static async Task<(string Paid, string Refused)> PayAndReuseAsync(PaymentsHost host)
    {
        using var client = host.Client();
        var alice = await PaymentsHost.CreateAccountAsync(client, "alice", deposit: 1000);
        var bob = await PaymentsHost.CreateAccountAsync(client, "bob");
        var paid = "order-" + Guid.NewGuid().ToString("N");
        var refused = "other-" + Guid.NewGuid().ToString("N");
        var key = Guid.NewGuid().ToString();

        using var first = await PaymentsHost.PostAsync(client, "/payments", new { from = alice.Id, to = bob.Id, amount = 100, currency = "EUR", reference = paid }, key);
        var firstBody = await first.Content.ReadAsByteArrayAsync();
        using var replay = await PaymentsHost.PostAsync(client, "/payments", new { from = alice.Id, to = bob.Id, amount = 100, currency = "EUR", reference = paid }, key);
        using var reused = await PaymentsHost.PostAsync(client, "/payments", new { from = alice.Id, to = bob.Id, amount = 100, currency = "EUR", reference = refused }, key);
        using var admin = host.Client(PaymentsHost.Operator);
        var audit = await admin.GetStringAsync($"/admin/idempotency/audit?tenant=tenant-a&key={key}");

        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Contains(paid, Encoding.UTF8.GetString(firstBody), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Created, replay.StatusCode);
        Assert.Equal("true", Assert.Single(replay.Headers.GetValues("Idempotent-Replayed")));
        Assert.Equal(firstBody, await replay.Content.ReadAsByteArrayAsync());
        Assert.Equal(first.Headers.Location, replay.Headers.Location);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, reused.StatusCode);
        var entry = Assert.Single(JsonDocument.Parse(audit).RootElement.GetProperty("entries").EnumerateArray());
        Assert.Contains(refused, entry.GetProperty("payload").GetString(), StringComparison.Ordinal);
        Assert.Equal(1, await host.Ledger.CountPaymentsAsync());
        return (paid, refused);
    }

    private static void AssertProtected(List<byte[]> oncely, List<byte[]> ledger, (string Paid, string Refused) reference)
    {
        Assert.NotEmpty(oncely);
        Assert.Contains(oncely, value => Contains(value, "Oncely-Protected"));
        Assert.Contains(oncely, value => Contains(value, "oncely-protected:v1:"));
        Assert.DoesNotContain(oncely, value => Contains(value, reference.Paid));
        Assert.DoesNotContain(oncely, value => Contains(value, reference.Refused));
        // The marker did reach the database: the ledger's own row keeps the reference, as the business record should.
        Assert.Contains(ledger, value => Contains(value, reference.Paid));
    }

    private static bool Contains(byte[] value, string text) => value.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0;

    // Every column of every row of the tables the query names, read with the driver's types (blobs and bytea as bytes).
    private static async Task<List<byte[]>> DumpAsync(DbConnection connection, string tablesQuery)
    {
        var tables = new List<string>();
        await using (var list = connection.CreateCommand())
        {
            list.CommandText = tablesQuery;
            await using var reader = await list.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                tables.Add(reader.GetString(0));
            }
        }

        var held = new List<byte[]>();
        foreach (var table in tables)
        {
            await using var select = connection.CreateCommand();
            select.CommandText = $"SELECT * FROM {table}";
            await using var reader = await select.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                for (var i = 0; i < reader.FieldCount; i++)
                {
                    held.Add(reader.GetValue(i) switch
                    {
                        byte[] bytes => bytes,
                        string text => Encoding.UTF8.GetBytes(text),
                        var other => Encoding.UTF8.GetBytes(Convert.ToString(other, CultureInfo.InvariantCulture) ?? string.Empty),
                    });
                }
            }
        }

        return held;
    }
}
