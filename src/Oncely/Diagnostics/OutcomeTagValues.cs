namespace Oncely;

/// <summary>The values of <see cref="IdempotencyDiagnostics.OutcomeTag"/>.</summary>
internal static class OutcomeTagValues
{
    public const string Executed = "executed";
    public const string Replayed = "replayed";
    public const string InProgress = "in_progress";
    public const string KeyReused = "key_reused";
    public const string StoreUnavailable = "store_unavailable";
    public const string Rejected = "rejected";
    public const string Released = "released";
    public const string NoKey = "no_key";
    public const string AnswerUnreadable = "answer_unreadable";

    public static string For(IdempotencyDecisionKind kind) => kind switch
    {
        IdempotencyDecisionKind.Execute => Executed,
        IdempotencyDecisionKind.Replay => Replayed,
        IdempotencyDecisionKind.InProgress => InProgress,
        IdempotencyDecisionKind.KeyReused => KeyReused,
        IdempotencyDecisionKind.StoredAnswerUnreadable => AnswerUnreadable,
        _ => StoreUnavailable,
    };
}
