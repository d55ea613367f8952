using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Oncely.AspNetCore;

namespace Oncely.AspNetCore.OpenApi.Tests;

/// <summary>
/// An application served on TestServer, and the OpenAPI document it serves at <c>/openapi/v1.json</c>, read as JSON the
/// way a client generator reads it.
/// </summary>
public sealed class OpenApiDocument : IAsyncDisposable
{
    private readonly WebApplication _app;

    private OpenApiDocument(WebApplication app, JsonDocument json)
    {
        _app = app;
        Json = json;
    }

    public JsonDocument Json { get; }

    public JsonElement Root => Json.RootElement;

    /// <summary>A client of the application that served the document, to see what its middleware does.</summary>
    public HttpClient CreateClient() => _app.GetTestClient();

    public static async Task<OpenApiDocument> ServeAsync(
        Action<WebApplication> endpoints,
        Action<IdempotencyOptions>? configure = null,
        bool withTransformer = true,
        Action<IServiceCollection>? services = null,
        Action<IIdempotencyBuilder>? idempotency = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        builder.Services.AddAuthentication();
        builder.Services.AddAuthorization();
        var oncely = builder.Services.AddIdempotency(o => configure?.Invoke(o));
        idempotency?.Invoke(oncely);
        builder.Services.AddOpenApi(options =>
        {
            if (withTransformer)
            {
                options.AddIdempotencyTransformer();
            }
        });
        services?.Invoke(builder.Services);
        var app = builder.Build();
        app.UseIdempotency();
        app.MapOpenApi();
        endpoints(app);
        await app.StartAsync();
        using var client = app.GetTestClient();
        var text = await client.GetStringAsync("/openapi/v1.json");
        return new OpenApiDocument(app, JsonDocument.Parse(text));
    }

    /// <summary>The operation of <paramref name="method"/> on <paramref name="path"/>.</summary>
    public JsonElement Operation(string path, string method = "post") => Root.GetProperty("paths").GetProperty(path).GetProperty(method);

    public static JsonElement? Parameter(JsonElement operation, string name)
    {
        if (!operation.TryGetProperty("parameters", out var parameters))
        {
            return null;
        }

        foreach (var parameter in parameters.EnumerateArray())
        {
            if (parameter.GetProperty("name").GetString() == name)
            {
                return parameter;
            }
        }

        return null;
    }

    public static JsonElement Response(JsonElement operation, int status) => operation.GetProperty("responses").GetProperty(status.ToString(System.Globalization.CultureInfo.InvariantCulture));

    public static IReadOnlyList<string> Statuses(JsonElement operation) => [.. operation.GetProperty("responses").EnumerateObject().Select(p => p.Name)];

    /// <summary>Follows a local <c>$ref</c> (<c>#/components/schemas/X</c>) to its target.</summary>
    public JsonElement Resolve(JsonElement schema)
    {
        if (!schema.TryGetProperty("$ref", out var reference))
        {
            return schema;
        }

        var target = Root;
        foreach (var part in reference.GetString()!.TrimStart('#', '/').Split('/'))
        {
            target = target.GetProperty(part);
        }

        return target;
    }

    public async ValueTask DisposeAsync()
    {
        Json.Dispose();
        await _app.DisposeAsync();
    }
}
