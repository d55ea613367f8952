using System.Collections.Concurrent;
using System.Data.Common;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using Oncely.AspNetCore;
using Oncely.PostgreSql.Tests.Infrastructure;
using Oncely.Storage.Specification;

namespace Oncely.PostgreSql.Tests;

/// <summary>
/// A one-commit endpoint on real Kestrel and a real PostgreSQL server of its own (this class restarts it) when its
/// transaction fails: a database restart in the middle of the transaction (issue 17, item 5), an error of the handler's
/// own (never turned into a 503), and a client that hangs up while another attempt completes (issue 17, item 16).
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgreSqlOneCommitFailureTests(PrivatePostgresFixture fixture) : IClassFixture<PrivatePostgresFixture>
{
    private const string StoreUnavailableType = ChargesApp.ProblemTypeBase + "idempotency-store-unavailable";

    /// <summary>Guards the waits for the handler's signals against a hang; nothing is expected to come near it.</summary>
    private static readonly TimeSpan Hang = TimeSpan.FromSeconds(60);

    private readonly PostgresServer _server = fixture.Server;

    [Fact]
    public async Task OneCommit_ServerRestartedMidTransaction_503WithRetryAfterNothingCommittedAndTheRetryExecutesOnce()
    {
        await using var app = await PaymentsApp.StartAsync(_server);
        // No digits: the key is looked for in a log line, where a run that looks like a card number would be masked.
        var key = $"hung-up-{string.Concat(Guid.NewGuid().ToString("N").Select(c => (char)(char.IsAsciiDigit(c) ? 'g' + (c - '0') : c)))}";
        var reserved = Signal();
        var restarted = Signal();
        app.NextAttemptAfterReservation.Enqueue(async (_, _) =>
        {
            reserved.SetResult();
            await restarted.Task;
        });

        var first = app.PayAsync(key);
        await reserved.Task.WaitAsync(Hang);

        // The transaction holds the uncommitted reservation; the server goes down and comes back under it.
        await _server.StopServerFastAsync();
        await _server.StartServerAsync();
        restarted.SetResult();
        var answer = await first;

        Assert.Equal(HttpStatusCode.ServiceUnavailable, answer.Status);
        Assert.NotNull(answer.RetryAfter);
        Assert.Equal("application/problem+json", answer.ContentType);
        Assert.Equal(StoreUnavailableType, answer.ProblemType);
        Assert.Equal(key, answer.Json.RootElement.GetProperty("idempotencyKey").GetString());
        Assert.Contains(app.Logs, l => l.EventId == IdempotencyEventIds.OneCommitTransientFailure && l.Level == LogLevel.Error);

        // Nothing committed: neither the payment nor the record.
        Assert.Equal(0, await app.CountAsync("SELECT COUNT(*) FROM payments WHERE idem_key = @k", key));
        Assert.Equal(0, await app.CountAsync("SELECT COUNT(*) FROM oncely.idempotency_records WHERE idem_key = @k", key));

        // The client retries as a 503 with Retry-After invites it to. Connections pooled before the restart are broken
        // and are dropped one by one as they fail, each failure answered 503 again with nothing run.
        var retry = await app.PayAsync(key);
        for (var attempt = 1; retry.Status == HttpStatusCode.ServiceUnavailable && attempt < 20; attempt++)
        {
            Assert.Equal(StoreUnavailableType, retry.ProblemType);
            retry = await app.PayAsync(key);
        }

        var replay = await app.PayAsync(key);

        Assert.Equal(HttpStatusCode.Created, retry.Status);
        Assert.False(retry.Replayed);
        Assert.Equal(HttpStatusCode.Created, replay.Status);
        Assert.True(replay.Replayed);
        Assert.Equal(retry.Body, replay.Body);
        Assert.Equal(1, await app.CountAsync("SELECT COUNT(*) FROM payments WHERE idem_key = @k", key));
        Assert.Equal(1, await app.CountAsync("SELECT COUNT(*) FROM oncely.idempotency_records WHERE idem_key = @k AND state = 1", key));
    }

    [Fact]
    public async Task OneCommit_HandlerStatementFailsWithItsOwnError_500NotMaskedAs503AndNothingCommitted()
    {
        await using var app = await PaymentsApp.StartAsync(_server);
        var key = Guid.NewGuid().ToString();
        app.NextAttemptAfterReservation.Enqueue(async (connection, transaction) =>
        {
            // A bug in the handler (22012 division_by_zero): no retry can fix it, so it must not be answered 503.
            await using var broken = new NpgsqlCommand("SELECT 1 / 0", (NpgsqlConnection)connection, (NpgsqlTransaction)transaction);
            await broken.ExecuteScalarAsync();
        });

        var answer = await app.PayAsync(key);

        Assert.Equal(HttpStatusCode.InternalServerError, answer.Status);
        Assert.DoesNotContain(app.Logs, l => l.EventId == IdempotencyEventIds.OneCommitTransientFailure);
        Assert.Equal(0, await app.CountAsync("SELECT COUNT(*) FROM payments WHERE idem_key = @k", key));
        Assert.Equal(0, await app.CountAsync("SELECT COUNT(*) FROM oncely.idempotency_records WHERE idem_key = @k", key));
    }

    [Fact]
    public async Task OneCommit_ClientHangsUpThenAnotherAttemptCompletes_ReleaseLogsRolledBackAtDebugNotLeaseLost()
    {
        await using var app = await PaymentsApp.StartAsync(_server);
        // No digits: the key is looked for in a log line, where a run that looks like a card number would be masked.
        var key = $"hung-up-{string.Concat(Guid.NewGuid().ToString("N").Select(c => (char)(char.IsAsciiDigit(c) ? 'g' + (c - '0') : c)))}";
        var reserved = Signal();
        var rolledBack = Signal();
        var otherAnswered = Signal();
        app.NextAttemptAfterReservation.Enqueue(async (_, transaction) =>
        {
            reserved.SetResult();
            try
            {
                await Task.Delay(Timeout.Infinite, app.RequestAborted!.Value);
            }
            catch (OperationCanceledException)
            {
                // The client hung up: the transaction rolls back, reservation included. The release that follows runs
                // only once another attempt has reserved the key and completed it, as in the chaos run.
                await transaction.RollbackAsync(CancellationToken.None);
                rolledBack.SetResult();
                await otherAnswered.Task;
                throw;
            }
        });

        using (var hangUp = new CancellationTokenSource())
        {
            var first = app.PayAsync(key, hangUp.Token, tag: PaymentsApp.HungUpTag);
            await reserved.Task.WaitAsync(Hang);
            await hangUp.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        }

        await rolledBack.Task.WaitAsync(Hang);
        var other = await app.PayAsync(key);
        otherAnswered.SetResult();
        await app.HungUpRequestFinished.WaitAsync(Hang);

        Assert.Equal(HttpStatusCode.Created, other.Status);
        Assert.False(other.Replayed);
        Assert.Equal(1, await app.CountAsync("SELECT COUNT(*) FROM payments WHERE idem_key = @k", key));
        Assert.DoesNotContain(app.Logs, l => l.EventId is IdempotencyEventIds.LeaseLost or IdempotencyEventIds.TakenOver);
        var rolledBackLog = Assert.Single(app.Logs, l => l.EventId == IdempotencyEventIds.OneCommitReservationRolledBack);
        Assert.Equal(LogLevel.Debug, rolledBackLog.Level);
        Assert.Contains("rolled back with its transaction", rolledBackLog.Message, StringComparison.Ordinal);
        Assert.Contains(key, rolledBackLog.Message, StringComparison.Ordinal);
    }

    private static TaskCompletionSource Signal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// <c>POST /payments</c>, one-commit: reserve as the transaction's first statement, run the attempt's step (if the
    /// test queued one), insert the payment, complete and commit. Its own database and data source; logs captured.
    /// </summary>
    private sealed class PaymentsApp : IAsyncDisposable
    {
        public const string HungUpTag = "hung-up";

        private readonly WebApplication _app;
        private readonly NpgsqlDataSource _dataSource;
        private readonly LogCapture _logs;
        private readonly HttpClient _client;
        private readonly TaskCompletionSource _hungUpFinished = Signal();

        private PaymentsApp(WebApplication app, NpgsqlDataSource dataSource, LogCapture logs)
        {
            _app = app;
            _dataSource = dataSource;
            _logs = logs;
            _client = new HttpClient { BaseAddress = new Uri(app.Urls.Single()), Timeout = Hang };
        }

        /// <summary>Steps run by the next attempts, one each, right after their reservation.</summary>
        public ConcurrentQueue<Func<DbConnection, DbTransaction, Task>> NextAttemptAfterReservation { get; } = new();

        /// <summary>The running attempt's <c>RequestAborted</c>, for a step that waits for its client to hang up.</summary>
        public CancellationToken? RequestAborted { get; private set; }

        /// <summary>Completes when the request sent with <see cref="HungUpTag"/> has left Oncely's middleware.</summary>
        public Task HungUpRequestFinished => _hungUpFinished.Task;

        public IReadOnlyList<CapturedLog> Logs => _logs.Entries;

        public static async Task<PaymentsApp> StartAsync(PostgresServer server)
        {
            var database = await server.CreateDatabaseAsync("one_commit_failures");
            var dataSource = server.CreateDataSource(database, maxPoolSize: 20);
            await using (var create = dataSource.CreateCommand("CREATE TABLE payments (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, idem_key text NOT NULL, amount bigint NOT NULL)"))
            {
                await create.ExecuteNonQueryAsync();
            }

            var logs = new LogCapture();
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Logging.ClearProviders();
            builder.Logging.SetMinimumLevel(LogLevel.Debug);
            builder.Logging.AddProvider(logs);
            builder.Services.AddIdempotency().UsePostgreSql(o => o.DataSource = dataSource);
            var app = builder.Build();
            PaymentsApp? self = null;
            app.Use(async (context, next) =>
            {
                try
                {
                    await next(context);
                }
                finally
                {
                    if (context.Request.Headers["X-Test-Tag"] == HungUpTag)
                    {
                        self!._hungUpFinished.TrySetResult();
                    }
                }
            });
            app.UseIdempotency();
            app.MapPost("/payments", async (HttpContext context, Payment payment) =>
            {
                var execution = context.GetIdempotencyExecution()!;
                var key = execution.Id.Key;
                await using var connection = await dataSource.OpenConnectionAsync(CancellationToken.None);
                await using var transaction = await connection.BeginTransactionAsync(CancellationToken.None);
                await execution.ReserveInTransactionAsync(transaction, CancellationToken.None);
                if (self!.NextAttemptAfterReservation.TryDequeue(out var step))
                {
                    self.RequestAborted = context.RequestAborted;
                    await step(connection, transaction);
                }

                await using (var insert = new NpgsqlCommand("INSERT INTO payments (idem_key, amount) VALUES (@k, @a) RETURNING id", connection, transaction))
                {
                    insert.Parameters.AddWithValue("k", key);
                    insert.Parameters.AddWithValue("a", payment.Amount);
                    var id = (long)(await insert.ExecuteScalarAsync(CancellationToken.None))!;
                    var response = IdempotentResponses.Json(201, new { id, key, payment.Amount }, location: $"/payments/{id}");
                    await execution.CompleteInTransactionAsync(transaction, response, CancellationToken.None);
                    await transaction.CommitAsync(CancellationToken.None);
                    return response.ToResult();
                }
            }).RequireIdempotencyKey().AllowAnonymousIdempotency().WithOneCommitReservation();

            await app.StartAsync();
            self = new PaymentsApp(app, dataSource, logs);
            return self;
        }

        public async Task<Answer> PayAsync(string key, CancellationToken cancellationToken = default, string? tag = null)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/payments")
            {
                Content = new StringContent("""{"amount":2500}""", Encoding.UTF8, "application/json"),
            };
            request.Headers.Add("Idempotency-Key", key);
            if (tag is not null)
            {
                request.Headers.Add("X-Test-Tag", tag);
            }

            using var response = await _client.SendAsync(request, cancellationToken);
            return new Answer(
                response.StatusCode,
                response.Headers.TryGetValues("Idempotent-Replayed", out var replayed) && replayed.Single() == "true",
                response.Content.Headers.ContentType?.MediaType,
                response.Headers.RetryAfter?.Delta,
                await response.Content.ReadAsStringAsync(cancellationToken));
        }

        /// <summary>Counts with a connection of its own (never one pooled before a restart).</summary>
        public async Task<long> CountAsync(string sql, string key)
        {
            var builder = new NpgsqlConnectionStringBuilder(_dataSource.ConnectionString) { Pooling = false };
            await using var connection = new NpgsqlConnection(builder.ConnectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand(sql, connection);
            command.Parameters.AddWithValue("k", key);
            return (long)(await command.ExecuteScalarAsync())!;
        }

        public async ValueTask DisposeAsync()
        {
            _client.Dispose();
            await _app.DisposeAsync();
            await _dataSource.DisposeAsync();
        }
    }

    private sealed record Payment(long Amount);

    private sealed record Answer(HttpStatusCode Status, bool Replayed, string? ContentType, TimeSpan? RetryAfter, string Body)
    {
        public JsonDocument Json => JsonDocument.Parse(Body);

        public string? ProblemType => ContentType == "application/problem+json" ? Json.RootElement.GetProperty("type").GetString() : null;
    }

    private sealed record CapturedLog(string Category, LogLevel Level, int EventId, string Message);

    private sealed class LogCapture : ILoggerProvider
    {
        private readonly ConcurrentQueue<CapturedLog> _entries = new();

        public IReadOnlyList<CapturedLog> Entries => [.. _entries];

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(LogCapture owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
                => owner._entries.Enqueue(new CapturedLog(category, logLevel, eventId.Id, formatter(state, exception)));
        }
    }
}
