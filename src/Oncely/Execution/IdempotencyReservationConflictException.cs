namespace Oncely;

/// <summary>
/// Thrown by <see cref="IdempotencyExecution.ReserveInTransactionAsync"/> (one-commit mode) when the key is held, so the
/// operation must not go on: let it leave the handler, so the operation's transaction is rolled back, and the caller
/// answers with <see cref="Kind"/>. The ASP.NET Core middleware does that on its own.
/// </summary>
public sealed class IdempotencyReservationConflictException : Exception
{
    /// <summary>Creates the exception (kind <see cref="IdempotencyDecisionKind.InProgress"/>).</summary>
    public IdempotencyReservationConflictException()
        : this("The idempotency key is held by another attempt.")
    {
    }

    /// <summary>Creates the exception with a message (kind <see cref="IdempotencyDecisionKind.InProgress"/>).</summary>
    /// <param name="message">What happened.</param>
    public IdempotencyReservationConflictException(string message)
        : base(message)
    {
        Kind = IdempotencyDecisionKind.InProgress;
    }

    /// <summary>Creates the exception with a message and a cause (kind <see cref="IdempotencyDecisionKind.InProgress"/>).</summary>
    /// <param name="message">What happened.</param>
    /// <param name="innerException">The cause.</param>
    public IdempotencyReservationConflictException(string message, Exception innerException)
        : base(message, innerException)
    {
        Kind = IdempotencyDecisionKind.InProgress;
    }

    internal IdempotencyReservationConflictException(IdempotencyRecordId id, IdempotencyDecisionKind kind, IdempotencyRecord? record)
        : base(kind switch
        {
            IdempotencyDecisionKind.Replay => $"Idempotency record '{id}' was completed by another attempt: replay its answer; this attempt must stop and roll back.",
            IdempotencyDecisionKind.KeyReused => $"Idempotency key of record '{id}' was already used for another payload: refuse; this attempt must stop and roll back.",
            _ => $"Idempotency record '{id}' is held by another attempt that is still running: refuse as in progress; this attempt must stop and roll back.",
        })
    {
        Id = id;
        Kind = kind;
        Record = record;
    }

    /// <summary>The record whose key is held, when known.</summary>
    public IdempotencyRecordId? Id { get; }

    /// <summary>
    /// How to answer: <see cref="IdempotencyDecisionKind.Replay"/> (the other attempt committed its answer),
    /// <see cref="IdempotencyDecisionKind.KeyReused"/> (another payload) or <see cref="IdempotencyDecisionKind.InProgress"/>
    /// (still running, or the wait for its transaction ran out).
    /// </summary>
    public IdempotencyDecisionKind Kind { get; }

    /// <summary>
    /// The record that holds the key, as the store reported it (with the stored answer for
    /// <see cref="IdempotencyDecisionKind.Replay"/>), or <see langword="null"/> when it could not be read inside the
    /// transaction: read it again after rolling back.
    /// </summary>
    public IdempotencyRecord? Record { get; }
}
