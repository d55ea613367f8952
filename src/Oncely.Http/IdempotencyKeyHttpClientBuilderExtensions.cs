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
    /// Order matters: call this <b>before</b> <c>AddStandardResilienceHandler</c> (or any retry/hedging handler), as in
    /// <c>AddHttpClient("payments").AddIdempotencyKeys().AddStandardResilienceHandler()</c>. Handlers added first run
    /// outermost, so this one runs once per logical request and every retry below reuses its key. Added the other way
    /// round it still keeps one key per request message (the key is kept in <see cref="HttpRequestMessage.Options"/>),
    /// but the resilience pipeline's total timeout then also covers the <c>409</c> waits.
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
