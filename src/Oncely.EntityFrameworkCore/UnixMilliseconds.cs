using System.Linq.Expressions;

namespace Oncely.EntityFrameworkCore;

/// <summary>The SQLite store keeps timestamps as integer Unix milliseconds; these convert them for EF Core.</summary>
internal static class UnixMilliseconds
{
    private static readonly long Min = DateTimeOffset.MinValue.ToUnixTimeMilliseconds();
    private static readonly long Max = DateTimeOffset.MaxValue.ToUnixTimeMilliseconds();

    public static readonly Expression<Func<DateTimeOffset, long>> ToStore = value => value.ToUnixTimeMilliseconds();

    public static readonly Expression<Func<long, DateTimeOffset>> FromStore = value => FromUnix(value);

    public static DateTimeOffset FromUnix(long value) => DateTimeOffset.FromUnixTimeMilliseconds(Math.Clamp(value, Min, Max));
}
