using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Oncely.AspNetCore;

namespace Oncely.Webhooks;

/// <summary>
/// How a Standard Webhooks endpoint is described to API documentation: its three required headers and the two
/// <c>401</c> problems, with the tolerance and problem type base URI in force. Generated clients (a provider's simulator,
/// a test harness) then send what the verifier checks, instead of the <c>Idempotency-Key</c> advice meant for API clients.
/// </summary>
internal static class StandardWebhookDocumentation
{
    public static IdempotencySenderDescription Describe(IServiceProvider services)
    {
        ArgumentNullException.ThrowIfNull(services);
        var tolerance = services.GetService<IOptions<StandardWebhooksOptions>>()?.Value.TimestampTolerance ?? new StandardWebhooksOptions().TimestampTolerance;
        var types = (services.GetService<IOptions<IdempotencyOptions>>()?.Value ?? new IdempotencyOptions()).ProblemTypeBaseUri;
        var within = Describe(tolerance);
        return new IdempotencySenderDescription(
            $"The delivery could not be verified, so nothing ran and nothing was recorded: the {StandardWebhooksOptions.IdHeaderName}, {StandardWebhooksOptions.TimestampHeaderName} or {StandardWebhooksOptions.SignatureHeaderName} header is missing or malformed, or no signature matches a secret of a sender this endpoint accepts (`{types}{StandardWebhooksProblemTypes.SignatureInvalid}`); or the signature matches but the timestamp is more than {within} from the receiver's clock (`{types}{StandardWebhooksProblemTypes.TimestampOutOfTolerance}`). Sign each delivery attempt when it is sent, with the secret configured for this endpoint, and redeliver.",
            [
                new IdempotencySenderHeader(
                    StandardWebhooksOptions.IdHeaderName,
                    "The delivery's id, chosen by the sender: the same on every redelivery of one event, a new one for each event. It is signed together with the timestamp and the body.")
                {
                    Example = "msg_2LJYmZ3LfIuxSd2K8VrS6jBVfXa",
                },
                new IdempotencySenderHeader(
                    StandardWebhooksOptions.TimestampHeaderName,
                    $"When this delivery attempt was signed, in integer seconds since the Unix epoch. A delivery signed more than {within} before or after the receiver's clock is refused with 401 (`{types}{StandardWebhooksProblemTypes.TimestampOutOfTolerance}`): sign each attempt when it is sent.")
                {
                    Pattern = "^[0-9]+$",
                    Example = "1767225600",
                },
                new IdempotencySenderHeader(
                    StandardWebhooksOptions.SignatureHeaderName,
                    $"One or more signatures separated by spaces, each `v1,` followed by the base64 HMAC-SHA256 of `{{{StandardWebhooksOptions.IdHeaderName}}}.{{{StandardWebhooksOptions.TimestampHeaderName}}}.{{body}}`, keyed with the bytes of the sender's secret (`whsec_` followed by base64). The delivery is accepted when any signature matches a secret of a sender this endpoint accepts; otherwise it is refused with 401 (`{types}{StandardWebhooksProblemTypes.SignatureInvalid}`).")
                {
                    Example = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                },
            ]);
    }

    private static string Describe(TimeSpan span)
        => span.TotalSeconds % 60 == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{span.TotalMinutes:0} {(span.TotalMinutes == 1 ? "minute" : "minutes")}")
            : string.Create(CultureInfo.InvariantCulture, $"{span.TotalSeconds:0.###} seconds");
}
