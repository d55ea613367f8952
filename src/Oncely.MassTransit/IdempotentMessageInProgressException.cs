namespace Oncely.MassTransit;

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
        : base(IdempotencyRedaction.Text($"Message '{id.Key}' is being consumed by another delivery of {id.Operation} (its lease runs until {leaseExpiresAt:O}); nothing ran. Retry later: it will be acknowledged once the other delivery completes, or run if it fails."))
    {
        RecordId = id;
    }

    /// <summary>The record that is held.</summary>
    public IdempotencyRecordId? RecordId { get; }
}
