using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Oncely;
using Oncely.MassTransit;

namespace MassTransit;

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
        var shared = context.GetService<IdempotentConsumerServices>()
            ?? throw new InvalidOperationException("UseIdempotentConsumers(context) needs the idempotent-consumer services: call services.AddIdempotentConsumers() (and choose its store) first.");
        Connect(configurator, shared);
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
    /// <param name="configureAudit">
    /// Changes the key-reuse audit's settings (<see cref="IdempotencyMaintenanceOptions.PayloadRedactor"/>,
    /// <see cref="IdempotencyMaintenanceOptions.AuditPayloadLimit"/>); default none. The purge settings do not apply: this
    /// overload runs no sweeper.
    /// </param>
    /// <exception cref="ArgumentException">The options are invalid; the message says what to change.</exception>
    public static void UseIdempotentConsumers(
        this IConsumePipeConfigurator configurator,
        IIdempotencyStore store,
        Action<IdempotentConsumerOptions>? configure = null,
        ILoggerFactory? loggerFactory = null,
        TimeProvider? timeProvider = null,
        Action<IdempotencyMaintenanceOptions>? configureAudit = null)
    {
        ArgumentNullException.ThrowIfNull(configurator);
        ArgumentNullException.ThrowIfNull(store);
        var options = new IdempotentConsumerOptions();
        configure?.Invoke(options);
        var audit = new IdempotencyMaintenanceOptions();
        configureAudit?.Invoke(audit);
        var auditProblems = audit.Validate();
        if (auditProblems.Count > 0)
        {
            throw new ArgumentException(string.Join(Environment.NewLine, auditProblems), nameof(configureAudit));
        }

        var auditor = new KeyReuseAuditor(audit, (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<KeyReuseAuditor>());
        Connect(configurator, new IdempotentConsumerServices(store, options, auditor, timeProvider, loggerFactory));
    }

    private static void Connect(IConsumePipeConfigurator configurator, IdempotentConsumerServices shared)
    {
        var observer = new IdempotentConsumerConfigurationObserver(shared);
        configurator.ConnectConsumerConfigurationObserver(observer);
        configurator.ConnectHandlerConfigurationObserver(observer);
    }
}
