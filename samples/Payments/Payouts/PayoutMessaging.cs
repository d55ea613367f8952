using MassTransit;
using Oncely.MassTransit;

namespace Payments.Payouts;

/// <summary>Which transport carries payout messages.</summary>
public enum PayoutBroker
{
    /// <summary>MassTransit's in-memory transport: nothing to install, messages live in the process (the default).</summary>
    InMemory,

    /// <summary>RabbitMQ at <c>ConnectionStrings:Broker</c> (an <c>amqp://user:password@host:5672/vhost</c> URI).</summary>
    RabbitMq,
}

/// <summary>The payout consumer's bus: MassTransit with message retry outside and Oncely's consume filter inside.</summary>
public static class PayoutMessaging
{
    /// <summary>The queue payout messages are sent to.</summary>
    public const string Queue = "payouts";

    /// <summary>The header naming the tenant that owns the accounts (the first half of the record's scope).</summary>
    public const string TenantHeader = "Payments-Tenant";

    /// <summary>
    /// Adds the bus. <c>Payments:Broker</c> picks the transport (<see cref="PayoutBroker.InMemory"/> by default). With
    /// idempotency on, consumers share the HTTP endpoints' store (registered before this call), in the ledger's database.
    /// </summary>
    public static void Add(IServiceCollection services, IConfiguration configuration, PaymentsSettings settings)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(settings);
        var broker = configuration.GetValue("Payments:Broker", PayoutBroker.InMemory);
        var brokerAddress = configuration.GetConnectionString("Broker");
        if (broker == PayoutBroker.RabbitMq && string.IsNullOrWhiteSpace(brokerAddress))
        {
            throw new InvalidOperationException("Payments:Broker is RabbitMq but ConnectionStrings:Broker is empty: set it to an AMQP URI such as \"amqp://guest:guest@localhost:5672/\".");
        }

        services.AddSingleton<PayoutRuns>();
        if (settings.Idempotency)
        {
            services.AddIdempotentConsumers(options =>
            {
                options.TenantHeader = TenantHeader;
                if (settings.Expiration is { } expiration)
                {
                    options.Expiration = expiration;
                }
            });
        }

        services.AddMassTransit(bus =>
        {
            bus.AddConsumer<PayoutConsumer>();
            if (broker == PayoutBroker.RabbitMq)
            {
                bus.UsingRabbitMq((context, cfg) =>
                {
                    cfg.Host(new Uri(brokerAddress!));
                    Configure(context, cfg, settings);
                });
            }
            else
            {
                bus.UsingInMemory((context, cfg) => Configure(context, cfg, settings));
            }
        });
    }

    private static void Configure<TEndpoint>(IBusRegistrationContext context, IBusFactoryConfigurator<TEndpoint> cfg, PaymentsSettings settings)
        where TEndpoint : IReceiveEndpointConfigurator
    {
        // Retry first (outside): a duplicate still in progress elsewhere, or the store being down, is tried again; a
        // message refused for good (its id reused with another payload) goes straight to payouts_error.
        cfg.UseMessageRetry(retry =>
        {
            retry.Ignore<IdempotentMessageRejectedException>();
            retry.Intervals(100, 200, 500, 1000, 2000, 5000, 10_000, 30_000);
        });
        if (settings.Idempotency)
        {
            cfg.UseIdempotentConsumers(context);
        }

        cfg.ReceiveEndpoint(Queue, endpoint => endpoint.ConfigureConsumer<PayoutConsumer>(context));
    }
}
