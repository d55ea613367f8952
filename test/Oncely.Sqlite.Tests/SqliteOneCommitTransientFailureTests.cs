using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Oncely.AspNetCore;

namespace Oncely.Sqlite.Tests;

/// <summary>
/// A one-commit endpoint on real Kestrel and real SQLite files whose transaction meets a busy database after its
/// reservation (issue 17, item 5): SQLite's transient failure is answered like an unreachable store, never a 500.
/// </summary>
public sealed class SqliteOneCommitTransientFailureTests : IDisposable
{
    private readonly TemporaryDirectory _directory = new();

    [Fact]
    public async Task OneCommit_DatabaseBusyAfterTheReservation_503WithRetryAfterNothingCommittedAndTheRetryExecutesOnce()
    {
        var records = TemporaryDirectory.ConnectionStringFor(_directory.NewDatabasePath());
        var ledgerFile = _directory.NewDatabasePath();
        await using (var ledger = new SqliteConnection(TemporaryDirectory.ConnectionStringFor(ledgerFile)))
        {
            await ledger.OpenAsync();
            await using var create = ledger.CreateCommand();
            create.CommandText = "CREATE TABLE payments (idem_key TEXT NOT NULL, amount INTEGER NOT NULL)";
            await create.ExecuteNonQueryAsync();
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddIdempotency().UseSqlite(records);
        await using var app = builder.Build();
        app.UseIdempotency();
        app.MapPost("/payments", async (HttpContext context, Payment payment) =>
        {
            var execution = context.GetIdempotencyExecution()!;

            // Not pooled: a pooled connection would come back with the ledger still attached.
            await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder(records) { Pooling = false }.ToString());
            await connection.OpenAsync();
            await using (var attach = connection.CreateCommand())
            {
                attach.CommandText = "ATTACH DATABASE $file AS ledger";
                attach.Parameters.AddWithValue("$file", ledgerFile);
                await attach.ExecuteNonQueryAsync();
            }

            // Deferred: the reservation takes the records database's write lock; the ledger's is asked for by the insert.
            await using var transaction = connection.BeginTransaction(deferred: true);
            await execution.ReserveInTransactionAsync(transaction);
            await using (var insert = connection.CreateCommand())
            {
                insert.Transaction = transaction;
                insert.CommandTimeout = 1; // how long Microsoft.Data.Sqlite retries a busy database before it throws
                insert.CommandText = "INSERT INTO ledger.payments (idem_key, amount) VALUES ($k, $a)";
                insert.Parameters.AddWithValue("$k", execution.Id.Key);
                insert.Parameters.AddWithValue("$a", payment.Amount);
                await insert.ExecuteNonQueryAsync();
            }

            var response = IdempotentResponses.Json(201, new { key = execution.Id.Key, payment.Amount });
            await execution.CompleteInTransactionAsync(transaction, response);
            await transaction.CommitAsync();
            return response.ToResult();
        }).RequireIdempotencyKey().AllowAnonymousIdempotency().WithOneCommitReservation();
        await app.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(app.Urls.Single()), Timeout = TimeSpan.FromSeconds(60) };
        var key = Guid.NewGuid().ToString();

        // Another writer holds the ledger until the test lets go.
        await using (var holder = new SqliteConnection(TemporaryDirectory.ConnectionStringFor(ledgerFile)))
        {
            await holder.OpenAsync();
            await using var held = holder.BeginTransaction(deferred: false);
            using var refused = await PayAsync(client, key);

            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.NotNull(refused.Headers.RetryAfter);
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
            using var problem = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
            Assert.Equal("https://oncely.dev/problems/idempotency-store-unavailable", problem.RootElement.GetProperty("type").GetString());
            await held.RollbackAsync();
        }

        Assert.Equal(0, await CountAsync(ledgerFile, "SELECT COUNT(*) FROM payments WHERE idem_key = $k", key));
        Assert.Equal(0, await CountAsync(records, "SELECT COUNT(*) FROM oncely_records WHERE idem_key = $k", key, isConnectionString: true));

        using var retry = await PayAsync(client, key);
        using var replay = await PayAsync(client, key);

        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.False(retry.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(1, await CountAsync(ledgerFile, "SELECT COUNT(*) FROM payments WHERE idem_key = $k", key));
    }

    public void Dispose() => _directory.Dispose();

    private static Task<HttpResponseMessage> PayAsync(HttpClient client, string key)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/payments")
        {
            Content = new StringContent("""{"amount":2500}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("Idempotency-Key", key);
        return client.SendAsync(request);
    }

    private static async Task<long> CountAsync(string file, string sql, string key, bool isConnectionString = false)
    {
        await using var connection = new SqliteConnection(isConnectionString ? file : TemporaryDirectory.ConnectionStringFor(file));
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("$k", key);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private sealed record Payment(long Amount);
}
