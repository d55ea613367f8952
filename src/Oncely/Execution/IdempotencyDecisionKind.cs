namespace Oncely;

/// <summary>What the engine decided for one attempt of an operation.</summary>
public enum IdempotencyDecisionKind
{
    /// <summary>This attempt holds the lease and must run the operation (a new key, or a take-over).</summary>
    Execute = 0,

    /// <summary>The operation completed earlier: answer with <see cref="IdempotencyDecision.Record"/>'s stored response.</summary>
    Replay = 1,

    /// <summary>Another attempt holds a valid lease: refuse (HTTP <c>409</c>) or try later.</summary>
    InProgress = 2,

    /// <summary>The key was used before for a different payload: refuse (HTTP <c>422</c> by default).</summary>
    KeyReused = 3,

    /// <summary>The store could not be reached in time: fail closed (HTTP <c>503</c>); nothing runs.</summary>
    StoreUnavailable = 4,

    /// <summary>
    /// The operation completed earlier, but its stored answer cannot be decrypted: it was protected
    /// (<c>ProtectStoredAnswers()</c>) under a Data Protection key that has since been revoked or removed from the key
    /// ring. Never replayed as garbage and never run again: HTTP answers <c>410</c> (decision-table row 6a); a message is
    /// acknowledged as already consumed. <see cref="IdempotencyDecision.Record"/> holds the record as stored (its status
    /// code is kept in clear).
    /// </summary>
    StoredAnswerUnreadable = 5,
}
