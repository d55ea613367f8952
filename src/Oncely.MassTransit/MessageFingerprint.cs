using System.Text.Json;
using MassTransit;
using MassTransit.Serialization;

namespace Oncely.MassTransit;

/// <summary>The fingerprint of a consumed message, and the bytes it hashed (kept for the audit of a refusal).</summary>
internal readonly record struct MessageFingerprint(string Value, string? ContentType, ReadOnlyMemory<byte> Payload)
{
    /// <summary>The verb every message fingerprint is computed under, so it never equals an HTTP request's.</summary>
    public const string Verb = "MESSAGE";

    private const string JsonContentType = "application/json";

    public static MessageFingerprint Of<TMessage>(ConsumeContext<TMessage> context, MessageFingerprintSource source)
        where TMessage : class
    {
        ReadOnlyMemory<byte> payload;
        string? contentType;
        if (source == MessageFingerprintSource.TransportBody)
        {
            payload = context.ReceiveContext.Body.GetBytes();
            contentType = context.ReceiveContext.ContentType?.ToString();
        }
        else
        {
            // The message as the consumer sees it: whatever the envelope or the member order on the wire, the same
            // values serialise to the same JSON, and canonicalisation irons out what is left (number spelling).
            payload = JsonSerializer.SerializeToUtf8Bytes(context.Message, typeof(TMessage), SystemTextJsonMessageSerializer.Options);
            contentType = JsonContentType;
        }

        var input = new FingerprintInput(Verb, MessageUrn.ForTypeString<TMessage>()) { ContentType = contentType, Body = payload };
        return new MessageFingerprint(RequestFingerprint.Compute(input), contentType, payload);
    }
}
