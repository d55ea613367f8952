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

namespace Oncely.PostgreSql.Tests.Infrastructure;

/// <summary>
/// One app instance as it runs in production: a <see cref="WebApplication"/> on Kestrel (127.0.0.1, a free port) with
/// its own <see cref="NpgsqlDataSource"/> (its own pool), Oncely on PostgreSQL, and one effectful endpoint,
/// <c>POST /charges</c>, whose effect is a row in the <c>charges</c> table of the same database.
/// </summary>
public sealed class ChargesApp : IAsyncDisposable
{
    /// <summary>Creates the effect table (once per database).</summary>
    public const string CreateChargesTableSql = """
        CREATE TABLE IF NOT EXISTS charges (
            id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            key        text        NOT NULL,
            amount     bigint      NOT NULL,
            instance   text        NOT NULL,
            created_at timestamptz NOT NULL DEFAULT clock_timestamp()
        )
        """;

    public const string ProblemTypeBase = "https://oncely.dev/problems/";

    private readonly WebApplication _app;
    private readonly HandlerCounter _runs;

    private ChargesApp(string name, WebApplication app, NpgsqlDataSource dataSource, HandlerCounter runs, Uri address)
    {
        Name = name;
        _app = app;
        DataSource = dataSource;
        _runs = runs;
        Client = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            BaseAddress = address,
            Timeout = TimeSpan.FromSeconds(60),
        };
    }

    public string Name { get; }

    /// <summary>This instance's own data source (connection pool); disposed with the app.</summary>
    public NpgsqlDataSource DataSource { get; }

    /// <summary>A client that talks to this instance over real HTTP.</summary>
    public HttpClient Client { get; }

    /// <summary>How many times the handler has been entered on this instance.</summary>
    public int HandlerRuns => _runs.Value;

    /// <summary>Starts an instance on its own data source for <paramref name="connectionString"/>.</summary>
    /// <param name="name">Written into each charge, so a replay shows which instance executed it.</param>
    /// <param name="connectionString">The shared database.</param>
    /// <param name="handlerDelay">Work before the effect: widens the window in which retries race the execution.</param>
    /// <param name="configureStore">Changes the store's options (the data source is set already).</param>
    /// <param name="configureIdempotency">Changes the middleware's and engine's options.</param>
    public static async Task<ChargesApp> StartAsync(
        string name,
        string connectionString,
        TimeSpan handlerDelay,
        Action<PostgreSqlIdempotencyStoreOptions>? configureStore = null,
        Action<IdempotencyOptions>? configureIdempotency = null)
    {
        var dataSource = NpgsqlDataSource.Create(connectionString);
        var runs = new HandlerCounter();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddIdempotency(o => configureIdempotency?.Invoke(o)).UsePostgreSql(o =>
        {
            o.DataSource = dataSource;
            configureStore?.Invoke(o);
        });

        var app = builder.Build();
        app.UseIdempotency();
        app.MapPost("/charges", async (HttpContext context, ChargeRequest charge) =>
        {
            runs.Increment();
            await Task.Delay(handlerDelay);
            var key = context.GetIdempotencyExecution()!.Id.Key;
            await using var insert = dataSource.CreateCommand("INSERT INTO charges (key, amount, instance) VALUES ($1, $2, $3) RETURNING id");
            insert.Parameters.Add(new NpgsqlParameter { Value = key });
            insert.Parameters.Add(new NpgsqlParameter { Value = charge.Amount });
            insert.Parameters.Add(new NpgsqlParameter { Value = name });
            var id = (long)(await insert.ExecuteScalarAsync())!;
            return Results.Created($"/charges/{id}", new ChargeResponse(id, key, charge.Amount, name));
        }).RequireIdempotencyKey().AllowAnonymousIdempotency();

        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            await dataSource.DisposeAsync();
            throw;
        }

        return new ChargesApp(name, app, dataSource, runs, new Uri(app.Urls.Single()));
    }

    /// <summary>A <c>POST /charges</c> with <paramref name="key"/>; the payload depends only on the key and the amount.</summary>
    public static HttpRequestMessage Charge(string key, long amount)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/charges")
        {
            Content = new StringContent($"{{\"amount\":{amount},\"reference\":\"{key}\"}}", Encoding.UTF8, "application/json"),
        };
        request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
        return request;
    }

    /// <summary>Sends a charge and reads the whole answer.</summary>
    public async Task<Answer> SendAsync(string key, long amount)
    {
        using var request = Charge(key, amount);
        var started = DateTimeOffset.UtcNow;
        using var response = await Client.SendAsync(request);
        var body = await response.Content.ReadAsByteArrayAsync();
        return new Answer(
            Name,
            key,
            response.StatusCode,
            response.Headers.TryGetValues("Idempotent-Replayed", out var replayed) && replayed.Single() == "true",
            response.Content.Headers.ContentType?.MediaType,
            response.Headers.RetryAfter?.Delta,
            response.Headers.Location?.OriginalString,
            body,
            started,
            DateTimeOffset.UtcNow);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.DisposeAsync();
        await DataSource.DisposeAsync();
    }

    /// <summary>Charges per key, as the database counts them.</summary>
    public static async Task<Dictionary<string, long>> ChargesPerKeyAsync(NpgsqlDataSource dataSource)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        await using var command = dataSource.CreateCommand("SELECT key, count(*) FROM charges GROUP BY key");
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            counts[reader.GetString(0)] = reader.GetInt64(1);
        }

        return counts;
    }

    public sealed record ChargeRequest(long Amount, string Reference);

    public sealed record ChargeResponse(long Id, string Key, long Amount, string Instance);

    /// <summary>One answer as the client saw it.</summary>
    public sealed record Answer(
        string Instance,
        string Key,
        HttpStatusCode Status,
        bool Replayed,
        string? MediaType,
        TimeSpan? RetryAfter,
        string? Location,
        byte[] Body,
        DateTimeOffset Started,
        DateTimeOffset Finished)
    {
        /// <summary>The first answer, from the execution itself: 201 and not a replay.</summary>
        public bool IsExecution => Status == HttpStatusCode.Created && !Replayed;

        public string BodyText => Encoding.UTF8.GetString(Body);

        public ChargeResponse Charge => JsonSerializer.Deserialize<ChargeResponse>(Body, JsonSerializerOptions.Web)!;

        /// <summary>The problem type's last segment, for a problem+json answer; otherwise <see langword="null"/>.</summary>
        public string? ProblemType
        {
            get
            {
                if (MediaType != "application/problem+json")
                {
                    return null;
                }

                using var document = JsonDocument.Parse(Body);
                var type = document.RootElement.GetProperty("type").GetString() ?? string.Empty;
                return type.StartsWith(ProblemTypeBase, StringComparison.Ordinal) ? type[ProblemTypeBase.Length..] : type;
            }
        }

        public override string ToString() => $"{Instance} {Key}: {(int)Status}{(Replayed ? " replayed" : "")} {BodyText}";
    }

    private sealed class HandlerCounter
    {
        private int _value;

        public int Value => Volatile.Read(ref _value);

        public void Increment() => Interlocked.Increment(ref _value);
    }
}
