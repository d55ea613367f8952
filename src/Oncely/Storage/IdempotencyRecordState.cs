namespace Oncely;

/// <summary>The two states a stored record can be in. A released or purged record does not exist.</summary>
public enum IdempotencyRecordState
{
    /// <summary>An execution holds the lease; its fencing token is the only one allowed to complete it.</summary>
    InProgress = 0,

    /// <summary>The operation finished and its first answer is stored for replay.</summary>
    Completed = 1,
}
