using System.Diagnostics;
using System.Numerics;

namespace Oncely.LoadTest;

/// <summary>
/// A fixed-size log-linear histogram of latencies in units of 0.1 µs (32 sub-buckets per power of two: under 3 %
/// error), so recording never allocates and each worker keeps its own and merges at the end.
/// </summary>
internal sealed class LatencyHistogram
{
    private const int Linear = 64;
    private const int SubBuckets = 32;
    private const int MaxShift = 40;
    private readonly long[] _counts = new long[Linear + (MaxShift * SubBuckets)];

    public long Count { get; private set; }

    public void RecordTicks(long stopwatchTicks)
    {
        var units = (long)(stopwatchTicks * (10_000_000.0 / Stopwatch.Frequency));
        _counts[IndexOf(Math.Max(0, units))]++;
        Count++;
    }

    public void Add(LatencyHistogram other)
    {
        for (var i = 0; i < _counts.Length; i++)
        {
            _counts[i] += other._counts[i];
        }

        Count += other.Count;
    }

    /// <summary>The latency at quantile <paramref name="q"/> (0..1), in milliseconds.</summary>
    public double QuantileMilliseconds(double q)
    {
        if (Count == 0)
        {
            return double.NaN;
        }

        var rank = (long)Math.Ceiling(q * Count);
        long seen = 0;
        for (var i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= rank)
            {
                return ValueOf(i) / 10_000.0;
            }
        }

        return ValueOf(_counts.Length - 1) / 10_000.0;
    }

    private static int IndexOf(long units)
    {
        if (units < Linear)
        {
            return (int)units;
        }

        var msb = 63 - BitOperations.LeadingZeroCount((ulong)units);
        var shift = Math.Min(msb - 5, MaxShift);
        var sub = (int)Math.Min(units >> shift, (2 * SubBuckets) - 1) - SubBuckets;
        return Linear + ((shift - 1) * SubBuckets) + sub;
    }

    // The middle of the bucket.
    private static double ValueOf(int index)
    {
        if (index < Linear)
        {
            return index + 0.5;
        }

        var shift = ((index - Linear) / SubBuckets) + 1;
        var sub = ((index - Linear) % SubBuckets) + SubBuckets;
        return ((long)sub << shift) + ((1L << shift) / 2.0);
    }
}
