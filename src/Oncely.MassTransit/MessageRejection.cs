namespace Oncely.MassTransit;

/// <summary>Why a message was refused without running its consumer, and must not be retried.</summary>
public enum MessageRejection
{
    /// <summary>The key (message id, key header or key member) is missing.</summary>
    KeyMissing = 0,

    /// <summary>The key is malformed: over the maximum length, or characters outside visible ASCII.</summary>
    KeyInvalid = 1,

    /// <summary>The tenant header is configured but the message does not carry it.</summary>
    TenantMissing = 2,

    /// <summary>The key was used before, by this consumer, for a different payload; the original record is untouched and the refusal is audited.</summary>
    KeyReused = 3,
}
