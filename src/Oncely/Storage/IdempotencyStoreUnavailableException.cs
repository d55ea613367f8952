namespace Oncely;

/// <summary>
/// Thrown by a store that cannot be reached or did not answer in time. The executor answers it by failing closed:
/// nothing executes, and HTTP callers get <c>503</c> with <c>Retry-After</c>.
/// </summary>
public sealed class IdempotencyStoreUnavailableException : Exception
{
    /// <summary>Creates the exception.</summary>
    public IdempotencyStoreUnavailableException()
        : base("The idempotency store is unavailable.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">What failed.</param>
    public IdempotencyStoreUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the driver's exception.</summary>
    /// <param name="message">What failed.</param>
    /// <param name="innerException">The driver's exception.</param>
    public IdempotencyStoreUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
