using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Oncely.Webhooks;

/// <summary>Adds Standard Webhooks verification to the builder returned by <c>AddIdempotency()</c>.</summary>
public static class StandardWebhooksIdempotencyBuilderExtensions
{
    /// <summary>
    /// Registers the Standard Webhooks verifier and its options (senders, secrets, timestamp tolerance), validated when
    /// the host starts: a sender without a secret, a secret that is not base64 (padded or not) or shorter than 16 bytes, a
    /// secret shared by two senders, an endpoint that names an unconfigured sender, or an endpoint whose records expire
    /// within twice the timestamp tolerance (its named policy's <c>Expiration</c>, else the global one) stops the
    /// application with a message naming the endpoint and saying what to change. Endpoints opt in with
    /// <c>.AcceptStandardWebhooks("sender")</c> (MVC: <c>[Idempotent(KeyHeader = "webhook-id")]</c> with
    /// <see cref="StandardWebhookAttribute"/>). Call it again, or configure <see cref="StandardWebhooksOptions"/> from
    /// configuration, to add senders.
    /// </summary>
    /// <param name="builder">The builder from <c>AddIdempotency()</c>.</param>
    /// <param name="configure">Adds senders and their secrets (<see cref="StandardWebhooksOptions.AddSender"/>).</param>
    /// <returns>The same builder.</returns>
    public static IIdempotencyBuilder AddStandardWebhooks(this IIdempotencyBuilder builder, Action<StandardWebhooksOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Services.AddOptions<StandardWebhooksOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<StandardWebhooksOptions>, StandardWebhooksOptionsValidator>());
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.TryAddSingleton<StandardWebhookVerifier>();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Transient<IStartupFilter, StandardWebhooksEndpointValidation>());
        return builder;
    }

    private sealed class StandardWebhooksOptionsValidator : IValidateOptions<StandardWebhooksOptions>
    {
        public ValidateOptionsResult Validate(string? name, StandardWebhooksOptions options)
        {
            var problems = options.Validate();
            return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
        }
    }
}
