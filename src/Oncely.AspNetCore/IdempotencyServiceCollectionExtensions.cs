using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Oncely;
using Oncely.AspNetCore;

namespace Microsoft.Extensions.DependencyInjection
{
    /// <summary>Registers Oncely's services.</summary>
    public static class IdempotencyServiceCollectionExtensions
    {
        /// <summary>
        /// Adds the idempotency engine with the in-memory store (replace it with <c>.UseSqlite(...)</c>,
        /// <c>.UsePostgreSql(...)</c> or <see cref="IdempotencyBuilderExtensions.UseStore{TStore}"/>). Options are
        /// validated when the host starts. The key-reuse audit and the purges of the store are shared with every other
        /// transport (<see cref="IdempotencyMaintenanceOptions"/>, set with
        /// <see cref="IdempotencyBuilderExtensions.ConfigureMaintenance"/>); one hosted service maintains the store however
        /// many transports the application registers.
        /// </summary>
        /// <param name="services">The application's services.</param>
        /// <param name="configure">Changes the defaults (see <see cref="IdempotencyOptions"/>).</param>
        /// <returns>A builder to choose the store with.</returns>
        public static IIdempotencyBuilder AddIdempotency(this IServiceCollection services, Action<IdempotencyOptions>? configure = null)
        {
            ArgumentNullException.ThrowIfNull(services);
            var builder = services.AddIdempotencyTransport(configure, "Oncely");
            services.TryAddSingleton(sp => new IdempotencyExecutor(
                sp.GetRequiredService<IIdempotencyStore>(),
                sp.GetRequiredService<IOptions<IdempotencyOptions>>().Value,
                sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<ILogger<IdempotencyExecutor>>(),
                sp.GetService<System.Diagnostics.Metrics.IMeterFactory>(),
                sp.GetRequiredService<IdempotencyRedaction>(),
                sp.GetService<StoredAnswerProtection>()));
            services.AddProblemDetails();
            services.AddMetrics();
            services.TryAddSingleton<IdempotencyMetrics>();
            services.TryAddSingleton(sp => new IdempotencyProblemWriter(sp.GetService<Microsoft.AspNetCore.Http.IProblemDetailsService>()));
            services.TryAddEnumerable(ServiceDescriptor.Transient<Microsoft.AspNetCore.Hosting.IStartupFilter, IdempotencyEndpointValidation>());
            services.TryAddSingleton<IdempotencyPipelineOrder>();
            services.TryAddEnumerable(ServiceDescriptor.Transient<Microsoft.AspNetCore.Hosting.IStartupFilter, IdempotencyCompositionValidation>());
            services.AddHostedService<InMemoryStoreWarning>();
            return builder;
        }
    }
}

namespace Microsoft.AspNetCore.Builder
{
    /// <summary>Adds Oncely's middleware to the pipeline.</summary>
    public static class IdempotencyApplicationBuilderExtensions
    {
        /// <summary>
        /// Adds the idempotency middleware. Place it after <c>UseAuthentication</c>/<c>UseAuthorization</c> (so the tenant
        /// is known and refused callers are never recorded) and after any rate limiter; endpoints opt in with
        /// <c>RequireIdempotencyKey()</c>, <c>AllowIdempotencyKey()</c> or <c>[Idempotent]</c>.
        /// </summary>
        /// <param name="app">The application.</param>
        /// <returns>The same application builder.</returns>
        /// <exception cref="InvalidOperationException">
        /// <c>AddIdempotency()</c> was not called. When the host starts: <c>UseRouting()</c>, <c>UseAuthentication()</c> or
        /// <c>UseAuthorization()</c> is called after this (see docs/composition.md).
        /// </exception>
        public static IApplicationBuilder UseIdempotency(this IApplicationBuilder app)
        {
            ArgumentNullException.ThrowIfNull(app);
            if (app.ApplicationServices.GetService<Oncely.IdempotencyExecutor>() is null)
            {
                throw new InvalidOperationException("UseIdempotency() needs the idempotency services: call builder.Services.AddIdempotency() first.");
            }

            app.ApplicationServices.GetService<IdempotencyPipelineOrder>()?.Record(app);
            return app.UseMiddleware<IdempotencyMiddleware>();
        }
    }
}
