namespace Oncely.MassTransit;

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
