namespace Oncely;

/// <summary>Thrown when an attempt's lease was taken over by another attempt, so it must not write anything more.</summary>
public sealed class IdempotencyLeaseLostException : Exception
{
    /// <summary>Creates the exception.</summary>
    public IdempotencyLeaseLostException()
        : base("The idempotency lease was taken over by another attempt.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">What happened.</param>
    public IdempotencyLeaseLostException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    /// <param name="message">What happened.</param>
    /// <param name="innerException">The cause.</param>
    public IdempotencyLeaseLostException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    internal IdempotencyLeaseLostException(IdempotencyRecordId id)
        : base($"The lease on idempotency record '{id}' was taken over by another attempt; this attempt must stop.")
    {
    }
}
