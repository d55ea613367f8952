using System.Diagnostics;

namespace Oncely.MassTransit.Tests.Infrastructure;

internal static class Eventually
{
    /// <summary>Polls <paramref name="condition"/> until it holds; fails with <paramref name="what"/> after <paramref name="timeout"/> (a hang guard, never a measurement).</summary>
    public static async Task HoldsAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null, Func<string>? details = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        var watch = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(watch.Elapsed < limit, $"Timed out after {limit} waiting until {what}.\n{details?.Invoke()}");
            await Task.Delay(50);
        }
    }

    public static Task HoldsAsync(Func<bool> condition, string what, TimeSpan? timeout = null, Func<string>? details = null) => HoldsAsync(() => Task.FromResult(condition()), what, timeout, details);
}
