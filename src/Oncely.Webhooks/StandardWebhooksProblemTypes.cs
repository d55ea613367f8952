namespace Oncely.Webhooks;

/// <summary>
/// The problem types a Standard Webhooks endpoint answers with before anything runs. Each is appended to
/// <c>IdempotencyOptions.ProblemTypeBaseUri</c> (default <c>https://oncely.dev/problems/</c>). Neither is recorded: a
/// corrected delivery with the same <c>webhook-id</c> runs normally.
/// </summary>
public static class StandardWebhooksProblemTypes
{
    /// <summary>
    /// <c>401</c>: the <c>webhook-id</c>, <c>webhook-timestamp</c> or <c>webhook-signature</c> header is missing or malformed,
    /// or no signature matches a secret of a sender the endpoint accepts (an unknown, wrong or retired secret, or a body
    /// changed in transit).
    /// </summary>
    public const string SignatureInvalid = "webhook-signature-invalid";

    /// <summary>
    /// <c>401</c>: the delivery is correctly signed, but its <c>webhook-timestamp</c> is further from the receiver's clock
    /// than <see cref="StandardWebhooksOptions.TimestampTolerance"/> (a replayed capture, a skewed clock, or a delivery
    /// held up in transit).
    /// </summary>
    public const string TimestampOutOfTolerance = "webhook-timestamp-out-of-tolerance";
}
