namespace Oncely.Check;

/// <summary>What one check concluded.</summary>
internal enum CheckOutcome
{
    /// <summary>The endpoint does what the rule asks.</summary>
    Pass,

    /// <summary>Safe, but not what the draft recommends (or the tool could not tell): worth a look, never fails the run.</summary>
    Warning,

    /// <summary>The rule is broken: retries are not safe in this respect. The run exits 1.</summary>
    Fail,

    /// <summary>Not run (an option it needs was not given).</summary>
    Skipped,
}
