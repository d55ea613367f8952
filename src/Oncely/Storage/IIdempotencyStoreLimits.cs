namespace Oncely;

/// <summary>
/// Optional capability: a store that can only keep records whose ids fit within limits of its own (for example the
/// size of a database index entry). Hosts check their configuration against it at start-up, so a setting the store
/// cannot honour fails then, with a message that says what to change, rather than as an outage at run time.
/// </summary>
public interface IIdempotencyStoreLimits
{
    /// <summary>The longest idempotency key, in characters, the store accepts for every tenant and operation it is used with.</summary>
    int MaxKeyLength { get; }
}
