using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Oncely;
using Oncely.PostgreSql;
using Oncely.Sqlite;
using Oncely.StackExchangeRedis;
using Payments.Ledger;

namespace Payments;

/// <summary>Which database holds the ledger and the idempotency records (always the same one).</summary>
public enum PaymentsDatabase
{
    Sqlite,
    PostgreSql,
}

/// <summary>Where Oncely keeps its idempotency records.</summary>
public enum PaymentsIdempotencyStore
{
    /// <summary>In the ledger's own database (the default): a money movement and its stored answer commit together.</summary>
    Database,

    /// <summary>
    /// In Redis (standalone or cluster, <c>Payments:RedisConnection</c>), while the money stays in SQL: the answer is stored
    /// after the ledger commits, not with it (see README.md, "Records in Redis").
    /// </summary>
    Redis,
}

/// <summary>The sample's settings, read once from configuration.</summary>
/// <param name="Database"><c>Payments:Database</c>: <c>Sqlite</c> (default) or <c>PostgreSql</c>.</param>
/// <param name="ConnectionString"><c>ConnectionStrings:Payments</c>; default a SQLite file <c>payments.db</c> in the content root.</param>
/// <param name="Idempotency"><c>Payments:Idempotency</c>: <see langword="false"/> builds the app without Oncely (the demo's "without" run).</param>
/// <param name="Expiration"><c>Oncely:Expiration</c>: how long an answer is kept for replay; default Oncely's 24 hours.</param>
/// <param name="OneCommit">
/// <c>Payments:OneCommit</c>: money movements reserve their record inside their own transaction, one commit each
/// (default <see langword="true"/>); <see langword="false"/> reserves first and commits twice (for comparisons). Always
/// <see langword="false"/> with the records in Redis, which cannot join the ledger's transaction.
/// </param>
/// <param name="IdempotencyStore"><c>Payments:IdempotencyStore</c>: <c>Database</c> (default, the ledger's) or <c>Redis</c>.</param>
/// <param name="RedisConnection">
/// <c>Payments:RedisConnection</c>: a StackExchange.Redis configuration string (<c>localhost:6379</c>, or a few cluster
/// nodes, <c>redis-1:6379,redis-2:6379</c>); required with <c>Payments:IdempotencyStore=Redis</c>.
/// </param>
/// <param name="ProtectStoredAnswers">
/// <c>Payments:ProtectStoredAnswers</c>: Oncely encrypts every stored answer and audit payload with ASP.NET Core Data
/// Protection (default <see langword="true"/>; see README.md, "Stored answers encrypted at rest").
/// </param>
/// <param name="KeyRing">
/// <c>Payments:KeyRing</c>: the folder of the Data Protection key ring. Default: <c>payments-keys</c> beside the SQLite
/// database file (in the content root for PostgreSQL or an in-memory database).
/// </param>
public sealed record PaymentsSettings(
    PaymentsDatabase Database,
    string ConnectionString,
    bool Idempotency,
    TimeSpan? Expiration,
    bool OneCommit = true,
    PaymentsIdempotencyStore IdempotencyStore = PaymentsIdempotencyStore.Database,
    string? RedisConnection = null,
    bool ProtectStoredAnswers = true,
    string? KeyRing = null)
{
    /// <summary>Whether a money movement's answer is written inside the ledger's transaction (the records share its database).</summary>
    public bool CompletesInLedgerTransaction => IdempotencyStore == PaymentsIdempotencyStore.Database;

    public static PaymentsSettings From(IConfiguration configuration, string contentRoot)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var database = configuration.GetValue("Payments:Database", PaymentsDatabase.Sqlite);
        var connectionString = configuration.GetConnectionString("Payments");
        var keyRingBeside = contentRoot;
        if (database == PaymentsDatabase.Sqlite)
        {
            // A relative SQLite file lives in the content root, wherever the process was started from.
            var sqlite = new SqliteConnectionStringBuilder(string.IsNullOrWhiteSpace(connectionString) ? "Data Source=payments.db" : connectionString);
            if (sqlite.Mode != SqliteOpenMode.Memory && !Path.IsPathRooted(sqlite.DataSource) && sqlite.DataSource != ":memory:")
            {
                sqlite.DataSource = Path.Combine(contentRoot, sqlite.DataSource);
            }

            if (sqlite.Mode != SqliteOpenMode.Memory && sqlite.DataSource != ":memory:" && Path.GetDirectoryName(sqlite.DataSource) is { Length: > 0 } folder)
            {
                keyRingBeside = folder;
            }

            connectionString = sqlite.ConnectionString;
        }
        else if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new InvalidOperationException(
                "Payments:Database is PostgreSql but ConnectionStrings:Payments is empty: set it to an Npgsql connection string such as \"Host=localhost;Database=payments;Username=payments;Password=…\".");
        }

        var store = configuration.GetValue("Payments:IdempotencyStore", PaymentsIdempotencyStore.Database);
        var redis = configuration["Payments:RedisConnection"];
        var oneCommit = configuration.GetValue<bool?>("Payments:OneCommit");
        if (store == PaymentsIdempotencyStore.Redis)
        {
            if (string.IsNullOrWhiteSpace(redis))
            {
                throw new InvalidOperationException(
                    "Payments:IdempotencyStore is Redis but Payments:RedisConnection is empty: set it to a StackExchange.Redis configuration string such as \"localhost:6379\" (or a few cluster nodes: \"redis-1:6379,redis-2:6379\").");
            }

            if (oneCommit == true)
            {
                throw new InvalidOperationException(
                    "Payments:OneCommit is true but Payments:IdempotencyStore is Redis: a reservation can only be made inside the ledger's transaction when the records live in the ledger's database. Remove Payments:OneCommit (Redis reserves before the transaction) or keep the records in the database.");
            }
        }

        return new PaymentsSettings(
            database,
            connectionString,
            configuration.GetValue("Payments:Idempotency", true),
            configuration.GetValue<TimeSpan?>("Oncely:Expiration"),
            oneCommit ?? store == PaymentsIdempotencyStore.Database,
            store,
            store == PaymentsIdempotencyStore.Redis ? redis : null,
            configuration.GetValue("Payments:ProtectStoredAnswers", true),
            configuration["Payments:KeyRing"] is { Length: > 0 } keyRing ? Path.GetFullPath(keyRing, contentRoot) : Path.Combine(keyRingBeside, "payments-keys"));
    }
}

/// <summary>Builds the payments service: used by <c>Program</c>, the demo and the tests alike.</summary>
public static class PaymentsApp
{
    /// <param name="args">Command-line arguments (configuration overrides such as <c>--urls</c> or <c>--Payments:Database=PostgreSql</c>).</param>
    /// <param name="configure">
    /// Changes the builder after the sample's services are added and before it is built (tests: a TestServer or another
    /// store; the demo: its fault hook). The sample's settings are read from <paramref name="args"/> and the usual sources.
    /// </param>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        var settings = PaymentsSettings.From(builder.Configuration, builder.Environment.ContentRootPath);
        var services = builder.Services;
        services.AddSingleton(settings);
        services.TryAddSingleton(TimeProvider.System);
        services.AddProblemDetails();
        services.AddSingleton<IProblemDetailsWriter, ProblemJsonFallbackWriter>(); // after AddProblemDetails: the last resort
        services.AddExceptionHandler<JsonBodies.BadRequestHandler>();

        // Amounts are JSON integers: "100" (a string) is refused rather than read as 100. A body that does not bind
        // throws, so it reaches JsonBodies.BadRequestHandler (a 400 problem) instead of an empty 400.
        services.ConfigureHttpJsonOptions(json => json.SerializerOptions.NumberHandling = JsonNumberHandling.Strict);
        services.Configure<RouteHandlerOptions>(routes => routes.ThrowOnBadRequest = true);
        services.AddSingleton<ApiKeys>();
        services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        // Every endpoint without a policy of its own needs a tenant (an operator key has none: 403); the operator API
        // needs an operator key (a tenant key: 403).
        services.AddAuthorizationBuilder()
            .SetFallbackPolicy(new AuthorizationPolicyBuilder().RequireAuthenticatedUser().RequireClaim(System.Security.Claims.ClaimTypes.NameIdentifier).Build())
            .AddPolicy("operator", policy => policy.RequireRole(ApiKeyAuthenticationHandler.OperatorRole));

        // The ledger and Oncely's records share one database, so a money movement and its stored answer can share a transaction.
        services.AddSingleton<LedgerDialect>(_ => settings.Database == PaymentsDatabase.PostgreSql
            ? new PostgreSqlLedgerDialect(settings.ConnectionString)
            : new SqliteLedgerDialect(settings.ConnectionString));
        services.AddSingleton<LedgerRepository>();
        services.AddHostedService<LedgerSchemaInitializer>();
        Webhooks.SettlementWebhook.AddServices(services);
        if (settings.Idempotency)
        {
            // Every Oncely setting (and named policy) can be set under "Oncely" in configuration.
            var idempotency = services.AddIdempotency(builder.Configuration.GetSection("Oncely"));
            if (settings.IdempotencyStore == PaymentsIdempotencyStore.Redis)
            {
                // Records in Redis, money in SQL: answers are stored after the ledger commits (README.md, "Records in Redis").
                idempotency.UseStackExchangeRedis(redis =>
                {
                    redis.Configuration = settings.RedisConnection;
                    redis.KeyPrefix = "payments";
                });
            }
            else if (settings.Database == PaymentsDatabase.PostgreSql)
            {
                idempotency.UsePostgreSql(settings.ConnectionString);
            }
            else
            {
                idempotency.UseSqlite(settings.ConnectionString);
            }

            if (settings.ProtectStoredAnswers)
            {
                // Stored answers and key-reuse audit payloads are encrypted before any table or key holds them; the key
                // ring lives in a folder beside the database (README.md, "Stored answers encrypted at rest").
                services.AddDataProtection()
                    .SetApplicationName("Payments")
                    .PersistKeysToFileSystem(new DirectoryInfo(settings.KeyRing!));
                idempotency.ProtectStoredAnswers();
            }

            Webhooks.SettlementWebhook.AddVerification(idempotency, builder.Configuration);
        }

        // Payout messages (MassTransit: in memory unless Payments:Broker=RabbitMq), consumed once per message id.
        Payouts.PayoutMessaging.Add(services, builder.Configuration, settings);

        // Served without authentication: the API's description (with Oncely's header, refusals and replay header on
        // every idempotent endpoint) and a health check that reads the idempotency store.
        services.AddOpenApi(options => options.AddIdempotencyTransformer());
        var health = services.AddHealthChecks();
        if (settings.Idempotency)
        {
            health.AddIdempotencyStore(tags: ["ready"]);
        }

        configure?.Invoke(builder);
        var app = builder.Build();
        app.UseExceptionHandler();

        // Any 4xx or 5xx still without a body (routing's 404, 405 and 415, a forbid) becomes problem+json too.
        app.UseStatusCodePages(pages => (pages.HttpContext.Response.StatusCode == StatusCodes.Status415UnsupportedMediaType
                ? PaymentProblems.UnsupportedMediaType(pages.HttpContext.Request.ContentType)
                : Results.Problem(statusCode: pages.HttpContext.Response.StatusCode))
            .ExecuteAsync(pages.HttpContext));
        app.UseAuthentication();
        app.UseAuthorization();
        app.Use(JsonBodies.RequireUtf8JsonAsync);
        if (settings.Idempotency)
        {
            // After authentication and authorization: the tenant is known, and refused callers are never recorded.
            app.UseIdempotency();
        }

        PaymentEndpoints.Map(app, settings.Idempotency, settings.OneCommit);
        Webhooks.SettlementWebhook.Map(app, settings.Idempotency, settings.OneCommit);
        Payouts.PayoutEndpoint.Map(app, settings.Idempotency);
        DevelopmentEndpoints.Map(app, settings.Idempotency);           // Development only: a stuck key for the walkthrough
        if (settings.Idempotency)
        {
            // Find and release stuck keys, read the key-reuse audit: operator keys only (see README.md).
            app.MapIdempotencyAdmin("/admin/idempotency").RequireAuthorization("operator");

            // The same in a browser: the page loads for anyone and holds no data; it asks for an operator key and
            // reads everything through the operator API above (see README.md, "The same in the browser").
            app.MapIdempotencyConsole("/admin/idempotency/console");
        }

        app.MapOpenApi().AllowAnonymous();                    // /openapi/v1.json
        app.MapHealthChecks("/health").AllowAnonymous();
        return app;
    }

    private sealed class LedgerSchemaInitializer(LedgerRepository ledger) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => ledger.EnsureSchemaAsync(cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
