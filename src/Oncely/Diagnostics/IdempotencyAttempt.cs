using System.Diagnostics;

namespace Oncely;

/// <summary>
/// One observed idempotent request: its span and start time, and the outcome the transport sets as it decides. Exists
/// only while something listens.
/// </summary>
internal sealed class IdempotencyAttempt
{
    private readonly IdempotencyInstrumentation _owner;
    private readonly long _started = Stopwatch.GetTimestamp();
    private string? _outcome;
    private string? _errorType;
    private int _stopped;

    internal IdempotencyAttempt(IdempotencyInstrumentation owner, string operation, Activity? activity)
    {
        _owner = owner;
        Operation = operation;
        Activity = activity;
    }

    public string Operation { get; }

    public Activity? Activity { get; }

    /// <summary>Sets what happened; the last call wins (a refused one-commit reservation is answered as a replay, say).</summary>
    public void SetOutcome(string outcome) => _outcome = outcome;

    /// <summary>Records that an exception escaped (its type only).</summary>
    public void SetError(Exception exception) => _errorType ??= IdempotencyInstrumentation.ErrorType(exception);

    /// <summary>Records the request once: counter, duration, and the end of its span.</summary>
    public void Stop()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 0)
        {
            _owner.Stop(this, _outcome, _errorType, Stopwatch.GetElapsedTime(_started));
        }
    }
}
