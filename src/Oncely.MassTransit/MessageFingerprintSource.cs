namespace Oncely.MassTransit;

/// <summary>What the fingerprint of a consumed message hashes.</summary>
public enum MessageFingerprintSource
{
    /// <summary>
    /// The deserialised message, serialised again with MassTransit's JSON settings and canonicalised (RFC 8785), under
    /// the message type's URN. Two sends of the same message match whatever their envelopes say; members the contract
    /// does not declare are not part of it.
    /// </summary>
    Message = 0,

    /// <summary>
    /// The transport body exactly as received (JSON canonicalised first when its content type is JSON). Only for raw
    /// JSON or other envelope-less serialisers: an envelope carries a new sent time on every publish, so a republished
    /// duplicate would count as another payload.
    /// </summary>
    TransportBody = 1,
}
