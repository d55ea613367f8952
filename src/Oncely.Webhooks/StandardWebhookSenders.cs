using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Oncely.AspNetCore;

namespace Oncely.Webhooks;

/// <summary>The metadata <c>AcceptStandardWebhooks(...)</c> adds: the senders an endpoint accepts.</summary>
internal sealed class StandardWebhookSenders(IReadOnlyList<string> senders) : IIdempotencySenderVerifier
{
    public IReadOnlyList<string> Senders { get; } = Check(senders);

    public ValueTask<IdempotencySenderVerification> VerifyAsync(HttpContext context, ReadOnlyMemory<byte> body, CancellationToken cancellationToken)
        => VerifyAsync(context, body, Senders);

    public IdempotencySenderDescription Describe(IServiceProvider services) => StandardWebhookDocumentation.Describe(services);

    internal static ValueTask<IdempotencySenderVerification> VerifyAsync(HttpContext context, ReadOnlyMemory<byte> body, IReadOnlyList<string> senders)
    {
        ArgumentNullException.ThrowIfNull(context);
        var verifier = context.RequestServices.GetService<StandardWebhookVerifier>()
            ?? throw new InvalidOperationException("A Standard Webhooks endpoint needs its senders' secrets: call builder.Services.AddIdempotency().AddStandardWebhooks(...).");
        return ValueTask.FromResult(verifier.Verify(context.Request, body.Span, senders));
    }

    internal static string[] Check(IReadOnlyList<string>? senders)
    {
        if (senders is null || senders.Count == 0 || senders.Any(string.IsNullOrWhiteSpace))
        {
            throw new ArgumentException("Name at least one sender (a key of StandardWebhooksOptions.Senders), and no empty name.", nameof(senders));
        }

        return [.. senders];
    }
}
