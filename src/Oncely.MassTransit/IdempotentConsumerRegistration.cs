using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Oncely;
using Oncely.MassTransit;

namespace Microsoft.Extensions.DependencyInjection
{
    /// <summary>Registers the services behind <c>UseIdempotentConsumers</c>, without ASP.NET Core.</summary>
    public static class IdempotentConsumerServiceCollectionExtensions
    {
        /// <summary>
        /// Adds the idempotent-consumer engine with the in-memory store (replace it with <c>.UseSqlite(...)</c>,
        /// <c>.UsePostgreSql(...)</c> or <see cref="IdempotencyBuilderExtensions.UseStore{TStore}"/>; an application that
        /// also calls <c>AddIdempotency()</c> shares one store between HTTP and messages). Options are validated when the
        /// host starts; a background service purges expired records and old audit entries of SQL stores. Then call
        /// <c>cfg.UseIdempotentConsumers(context)</c> in the MassTransit bus configuration.
        /// </summary>
        /// <param name="services">The application's services.</param>
        /// <param name="configure">Changes the defaults (see <see cref="IdempotentConsumerOptions"/>).</param>
        /// <returns>A builder to choose the store with.</returns>
        public static IIdempotencyBuilder AddIdempotentConsumers(this IServiceCollection services, Action<IdempotentConsumerOptions>? configure = null)
        {
            ArgumentNullException.ThrowIfNull(services);
            var options = services.AddOptions<IdempotentConsumerOptions>();
            if (configure is not null)
            {
                options.Configure(configure);
            }

            options.ValidateOnStart();
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<IdempotentConsumerOptions>, IdempotentConsumerOptionsValidator>());
            services.TryAddSingleton(TimeProvider.System);
            services.TryAddSingleton<IIdempotencyStore>(sp => new InMemoryIdempotencyStore(sp.GetRequiredService<TimeProvider>()));
            services.TryAddSingleton(sp => new IdempotentConsumerEngine(
                sp.GetRequiredService<IIdempotencyStore>(),
                sp.GetRequiredService<IOptions<IdempotentConsumerOptions>>().Value,
                sp.GetRequiredService<TimeProvider>(),
                sp.GetService<ILoggerFactory>()));
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, IdempotentConsumerStoreMaintenance>());
            return new Builder(services);
        }

        private sealed class Builder(IServiceCollection services) : IIdempotencyBuilder
        {
            public IServiceCollection Services { get; } = services;
        }
    }
}

namespace Oncely.MassTransit
{
    internal sealed class IdempotentConsumerOptionsValidator : IValidateOptions<IdempotentConsumerOptions>
    {
        public ValidateOptionsResult Validate(string? name, IdempotentConsumerOptions options)
        {
            var problems = options.Validate();
            return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
        }
    }
}

namespace MassTransit
{
    /// <summary>Puts Oncely in front of MassTransit consumers.</summary>
    public static class IdempotentConsumerPipeConfiguratorExtensions
    {
        /// <summary>
        /// Runs every consumer and handler configured on this bus (or endpoint) after this call at most once per message
        /// key, with the services from <c>services.AddIdempotentConsumers()</c>: a redelivery or duplicate of a consumed
        /// message is acknowledged without running; a duplicate that arrives while the first delivery runs throws
        /// <see cref="IdempotentMessageInProgressException"/> (retried by message retry); the same key with another payload
        /// throws <see cref="IdempotentMessageRejectedException"/> (audited, to the error queue); a consumer that throws
        /// releases the record so a retry runs again. Call it before <c>ConfigureEndpoints</c> (or before the endpoint's
        /// consumers), and after <c>UseMessageRetry</c>.
        /// </summary>
        /// <param name="configurator">The bus or receive endpoint configurator.</param>
        /// <param name="context">The bus registration context (the <c>context</c> of <c>UsingRabbitMq((context, cfg) =&gt; …)</c>).</param>
        /// <exception cref="InvalidOperationException"><c>AddIdempotentConsumers()</c> was not called.</exception>
        public static void UseIdempotentConsumers(this IConsumePipeConfigurator configurator, IRegistrationContext context)
        {
            ArgumentNullException.ThrowIfNull(configurator);
            ArgumentNullException.ThrowIfNull(context);
            var engine = context.GetService<IdempotentConsumerEngine>()
                ?? throw new InvalidOperationException("UseIdempotentConsumers(context) needs the idempotent-consumer services: call services.AddIdempotentConsumers() (and choose its store) first.");
            Connect(configurator, engine);
        }

        /// <summary>
        /// The same as <see cref="UseIdempotentConsumers(IConsumePipeConfigurator, IRegistrationContext)"/>, for a bus
        /// built without dependency injection: the records live in <paramref name="store"/>. Expired records of a SQL
        /// store are not purged by this overload; run the store's sweeper yourself or use the DI registration.
        /// </summary>
        /// <param name="configurator">The bus or receive endpoint configurator.</param>
        /// <param name="store">Where records live.</param>
        /// <param name="configure">Changes the defaults (see <see cref="IdempotentConsumerOptions"/>).</param>
        /// <param name="loggerFactory">Where events go; default none.</param>
        /// <param name="timeProvider">The clock; default <see cref="TimeProvider.System"/>.</param>
        /// <exception cref="ArgumentException">The options are invalid; the message says what to change.</exception>
        public static void UseIdempotentConsumers(
            this IConsumePipeConfigurator configurator,
            IIdempotencyStore store,
            Action<IdempotentConsumerOptions>? configure = null,
            ILoggerFactory? loggerFactory = null,
            TimeProvider? timeProvider = null)
        {
            ArgumentNullException.ThrowIfNull(configurator);
            ArgumentNullException.ThrowIfNull(store);
            var options = new IdempotentConsumerOptions();
            configure?.Invoke(options);
            Connect(configurator, new IdempotentConsumerEngine(store, options, timeProvider, loggerFactory));
        }

        private static void Connect(IConsumePipeConfigurator configurator, IdempotentConsumerEngine engine)
        {
            var observer = new IdempotentConsumerConfigurationObserver(engine);
            configurator.ConnectConsumerConfigurationObserver(observer);
            configurator.ConnectHandlerConfigurationObserver(observer);
        }
    }
}
