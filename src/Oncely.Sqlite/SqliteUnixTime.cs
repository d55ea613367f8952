namespace Oncely.Sqlite;

/// <summary>How the store keeps time in SQLite: integer Unix milliseconds, saturating at what <see cref="DateTimeOffset"/> can hold.</summary>
internal static class SqliteUnixTime
{
    private static readonly long MaxUnixMilliseconds = DateTimeOffset.MaxValue.ToUnixTimeMilliseconds();
    private static readonly long MinUnixMilliseconds = DateTimeOffset.MinValue.ToUnixTimeMilliseconds();

    /// <summary><paramref name="now"/> plus <paramref name="span"/> in whole milliseconds (rounded up), saturating at the representable range.</summary>
    public static long After(long now, TimeSpan span)
    {
        var ms = span.Ticks >= 0
            ? (span.Ticks / TimeSpan.TicksPerMillisecond) + (span.Ticks % TimeSpan.TicksPerMillisecond == 0 ? 0 : 1)
            : span.Ticks / TimeSpan.TicksPerMillisecond;
        if (ms > 0 && now > MaxUnixMilliseconds - ms)
        {
            return MaxUnixMilliseconds;
        }

        if (ms < 0 && now < MinUnixMilliseconds - ms)
        {
            return MinUnixMilliseconds;
        }

        return now + ms;
    }

    /// <summary>A stored time back as a <see cref="DateTimeOffset"/>, clamped to the representable range.</summary>
    public static DateTimeOffset ToDateTimeOffset(long value)
        => DateTimeOffset.FromUnixTimeMilliseconds(Math.Clamp(value, MinUnixMilliseconds, MaxUnixMilliseconds));
}
