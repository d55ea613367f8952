using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Oncely.Http;

/// <summary>Adds idempotency keys to the requests of a named <see cref="HttpClient"/>.</summary>
public static class IdempotencyKeyHttpClientBuilderExtensions
{
    /// <summary>
    /// Adds a handler that gives every logical <c>POST</c> and <c>PATCH</c> without a key a fresh <c>Idempotency-Key</c>,
    /// keeps a caller's key, and re-sends (same key, same body) after a <c>409</c> "request in progress" once
    /// <c>Retry-After</c> has passed.
    /// </summary>
    /// <remarks>
    /// <para>
    /// Order matters: call this <b>before</b> <c>AddStandardResilienceHandler</c>, <c>AddStandardHedgingHandler</c> or
    /// any other retry handler, as in <c>AddHttpClient("payments").AddIdempotencyKeys().AddStandardResilienceHandler()</c>.
    /// Handlers added first run outermost, so this one runs once per logical request and every retry below it re-sends
    /// the same message with the same key. Added the other way round, plain retries still keep the key (it stays on the
    /// message and in <see cref="HttpRequestMessage.Options"/>), but hedged attempts are clones taken before this handler
    /// runs and each gets a different key, and the pipeline's timeouts then also cover the <c>409</c> waits. The handler
    /// logs a warning (event id 6) when it finds itself inside a resilience pipeline.
    /// </para>
    /// <para>Default options: see <see cref="IdempotencyKeyHandlerOptions"/>. They are validated when the client is first created.</para>
    /// </remarks>
    /// <param name="builder">The client builder from <c>AddHttpClient</c>.</param>
    /// <param name="configure">Changes the options of this client's handler; default <see langword="null"/> keeps the defaults.</param>
    /// <returns>The same builder, to chain further calls.</returns>
    public static IHttpClientBuilder AddIdempotencyKeys(this IHttpClientBuilder builder, Action<IdempotencyKeyHandlerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);

        var options = builder.Services.AddOptions<IdempotencyKeyHandlerOptions>(builder.Name);
        if (configure is not null)
        {
            options.Configure(configure);
        }

        builder.Services.TryAddEnumerable(
            ServiceDescriptor.Singleton<IValidateOptions<IdempotencyKeyHandlerOptions>, IdempotencyKeyHandlerOptionsValidator>());

        var name = builder.Name;
        builder.AddHttpMessageHandler(services =>
        {
            var resolved = services.GetRequiredService<IOptionsMonitor<IdempotencyKeyHandlerOptions>>().Get(name);
            var timeProvider = resolved.TimeProvider ?? services.GetService<TimeProvider>() ?? TimeProvider.System;
            var logger = services.GetService<ILoggerFactory>()?.CreateLogger("Oncely.Http.IdempotencyKeyHandler")
                ?? NullLogger.Instance;
            return new IdempotencyKeyHandler(resolved, timeProvider, logger);
        });

        return builder;
    }
}
