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

/// <summary>
/// Thrown by the idempotent consume filter when a message is refused before its consumer runs, for a reason that a
/// retry cannot change (<see cref="Reason"/>). Exclude it from message retry (<c>r.Ignore&lt;IdempotentMessageRejectedException&gt;()</c>)
/// so the message goes straight to the endpoint's <c>_error</c> queue, where its fault headers carry this message.
/// </summary>
public sealed class IdempotentMessageRejectedException : Exception
{
    /// <summary>Creates the exception (reason <see cref="MessageRejection.KeyMissing"/>).</summary>
    public IdempotentMessageRejectedException()
        : this("The message was refused by the idempotent consume filter.")
    {
    }

    /// <summary>Creates the exception with a message (reason <see cref="MessageRejection.KeyMissing"/>).</summary>
    /// <param name="message">What happened.</param>
    public IdempotentMessageRejectedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause (reason <see cref="MessageRejection.KeyMissing"/>).</summary>
    /// <param name="message">What happened.</param>
    /// <param name="innerException">The cause.</param>
    public IdempotentMessageRejectedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    internal IdempotentMessageRejectedException(MessageRejection reason, IdempotencyRecordId? id, string message)
        : base(message)
    {
        Reason = reason;
        RecordId = id;
    }

    /// <summary>Why the message was refused.</summary>
    public MessageRejection Reason { get; }

    /// <summary>The record the message maps to, when its key and tenant were known.</summary>
    public IdempotencyRecordId? RecordId { get; }
}

/// <summary>
/// Thrown by the idempotent consume filter when another delivery of the same message (same scope and key) is being
/// consumed right now, by this or another consumer instance, so this one must not run. Nothing ran; let message retry
/// or redelivery try it again later: by then the first delivery has finished (this one is acknowledged without
/// running) or failed (this one runs), or its worker died and its lease ran out (this one takes over).
/// </summary>
public sealed class IdempotentMessageInProgressException : Exception
{
    /// <summary>Creates the exception.</summary>
    public IdempotentMessageInProgressException()
        : this("Another delivery of this message is being consumed; retry later.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">What happened.</param>
    public IdempotentMessageInProgressException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    /// <param name="message">What happened.</param>
    /// <param name="innerException">The cause.</param>
    public IdempotentMessageInProgressException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    internal IdempotentMessageInProgressException(IdempotencyRecordId id, DateTimeOffset? leaseExpiresAt)
        : base($"Message '{id.Key}' is being consumed by another delivery of {id.Operation} (its lease runs until {leaseExpiresAt:O}); nothing ran. Retry later: it will be acknowledged once the other delivery completes, or run if it fails.")
    {
        RecordId = id;
    }

    /// <summary>The record that is held.</summary>
    public IdempotencyRecordId? RecordId { get; }
}
