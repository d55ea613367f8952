using System.Globalization;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Oncely.AspNetCore;

namespace Oncely.Webhooks;

/// <summary>
/// Verifies Standard Webhooks deliveries against the configured senders' secrets. Every signature in
/// <c>webhook-signature</c> is tried against every secret of every sender the endpoint accepts, each comparison in
/// constant time (<see cref="CryptographicOperations.FixedTimeEquals"/>); only then is the timestamp checked, so
/// <c>webhook-timestamp-out-of-tolerance</c> is only ever said of authentic deliveries. The clock is the
/// <see cref="TimeProvider"/> registered in DI.
/// </summary>
internal sealed partial class StandardWebhookVerifier
{
    // Unix seconds of 9999-12-31T23:59:59Z: the largest timestamp a DateTimeOffset holds.
    private const long MaxUnixSeconds = 253_402_300_799;

    private readonly Dictionary<string, byte[][]> _keys;
    private readonly TimeSpan _tolerance;
    private readonly TimeProvider _clock;
    private readonly ILogger _logger;
    private readonly IdempotencyRedaction _redaction;

    public StandardWebhookVerifier(IOptions<StandardWebhooksOptions> options, TimeProvider clock, ILogger<StandardWebhookVerifier> logger, IServiceProvider services)
    {
        _redaction = services.GetService(typeof(IdempotencyRedaction)) as IdempotencyRedaction ?? IdempotencyRedaction.Default;
        var value = options.Value;
        _tolerance = value.TimestampTolerance;
        _clock = clock;
        _logger = logger;
        _keys = new Dictionary<string, byte[][]>(StringComparer.Ordinal);
        foreach (var (name, sender) in value.Senders)
        {
            _keys[name] = [.. sender.Secrets.Select(secret => StandardWebhookSecret.TryDecode(secret, out var key) ? key : []).Where(key => key.Length > 0)];
        }
    }

    public TimeSpan Tolerance => _tolerance;

    public bool Knows(string sender) => _keys.ContainsKey(sender);

    public IdempotencySenderVerification Verify(HttpRequest request, ReadOnlySpan<byte> body, IReadOnlyList<string> senders)
    {
        var headers = request.Headers;
        if (Single(headers[StandardWebhooksOptions.IdHeaderName]) is not { } id)
        {
            return Invalid(request, "The webhook-id header is missing, empty or sent more than once. Send it once, with the delivery's id (the same on every redelivery).");
        }

        if (Single(headers[StandardWebhooksOptions.TimestampHeaderName]) is not { } timestamp
            || !long.TryParse(timestamp, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)
            || seconds > MaxUnixSeconds)
        {
            return Invalid(request, "The webhook-timestamp header is missing, sent more than once, or not the time of signing in integer seconds since the Unix epoch (for example 1767225600).");
        }

        var signatures = Signatures(headers[StandardWebhooksOptions.SignatureHeaderName]);
        if (signatures.Count == 0)
        {
            return Invalid(request, "The webhook-signature header is missing or holds no v1 signature. Send 'v1,' followed by the base64 HMAC-SHA256 of '{webhook-id}.{webhook-timestamp}.{body}' (several signatures separated by spaces).");
        }

        var sender = MatchingSender(id, timestamp, body, signatures, senders);
        if (sender is null)
        {
            return Invalid(request, "No signature in the webhook-signature header matches a signing secret this endpoint accepts. Check the secret (whsec_…) configured on both sides, and that the body and the webhook-id and webhook-timestamp headers reach the server exactly as signed.");
        }

        var signedAt = DateTimeOffset.FromUnixTimeSeconds(seconds);
        var now = _clock.GetUtcNow();
        if (signedAt < now - _tolerance || signedAt > now + _tolerance)
        {
            LogTimestampOutOfTolerance(_logger, _redaction.Tenant(sender), _redaction.Key(id), signedAt, now, _tolerance);
            return IdempotencySenderVerification.Refused(
                StandardWebhooksProblemTypes.TimestampOutOfTolerance,
                "Webhook timestamp out of tolerance",
                string.Create(CultureInfo.InvariantCulture, $"The delivery was signed at {signedAt:O}, more than {_tolerance.TotalSeconds:0} seconds from the receiver's clock. Sign each delivery attempt when it is sent (a redelivery gets a fresh timestamp and signature), and keep the sender's clock in sync."));
        }

        if (_logger.IsEnabled(LogLevel.Debug))
        {
            LogVerified(_logger, _redaction.Tenant(sender), _redaction.Key(id));
        }

        return IdempotencySenderVerification.Verified(sender);
    }

    private string? MatchingSender(string id, string timestamp, ReadOnlySpan<byte> body, List<byte[]> signatures, IReadOnlyList<string> senders)
    {
        Span<byte> expected = stackalloc byte[HMACSHA256.HashSizeInBytes];
        foreach (var sender in senders)
        {
            if (!_keys.TryGetValue(sender, out var keys))
            {
                continue;
            }

            foreach (var key in keys)
            {
                StandardWebhookSignature.Compute(key, id, timestamp, body, expected);
                var matched = false;
                foreach (var signature in signatures)
                {
                    // No early exit on a match: each comparison is constant time, and so is their number.
                    matched |= CryptographicOperations.FixedTimeEquals(expected, signature);
                }

                if (matched)
                {
                    return sender;
                }
            }
        }

        return null;
    }

    // Every "v1,<base64 of 32 bytes>" among the space-separated entries of every value; other versions (v1a, …) and
    // malformed entries are skipped, as the standard asks.
    private static List<byte[]> Signatures(StringValues values)
    {
        var found = new List<byte[]>();
        foreach (var value in values)
        {
            if (value is null)
            {
                continue;
            }

            foreach (var entry in value.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!entry.StartsWith("v1,", StringComparison.Ordinal))
                {
                    continue;
                }

                var signature = new byte[HMACSHA256.HashSizeInBytes + 3];
                if (Convert.TryFromBase64String(entry[3..], signature, out var written) && written == HMACSHA256.HashSizeInBytes)
                {
                    found.Add(signature[..written]);
                }
            }
        }

        return found;
    }

    private static string? Single(StringValues values)
        => values.Count == 1 && !string.IsNullOrWhiteSpace(values[0]) ? values[0] : null;

    private IdempotencySenderVerification Invalid(HttpRequest request, string detail)
    {
        LogSignatureInvalid(_logger, request.Method, _redaction.Path(request.Path.Value), IdempotencyRedaction.Text(detail));
        return IdempotencySenderVerification.Refused(StandardWebhooksProblemTypes.SignatureInvalid, "Webhook signature invalid", detail);
    }
}
