using System.Net.Http.Headers;

namespace Oncely.Http.Tests;

public sealed class IdempotencyKeyHandlerInternalsTests
{
    private static readonly DateTimeOffset Now = new(2030, 1, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Max = TimeSpan.FromSeconds(5);
    private const string InProgress = RecordingServer.InProgressType;
    private const string Reused = RecordingServer.KeyReusedType;

    [Fact]
    public void GetConflictDelay_InProgressWithDeltaSeconds_WaitsThatLong() =>
        Assert.Equal(TimeSpan.FromSeconds(2), IdempotencyKeyHandler.GetConflictDelay(new RetryConditionHeaderValue(TimeSpan.FromSeconds(2)), InProgress, true, Max, Now));

    [Fact]
    public void GetConflictDelay_InProgressWithDate_WaitsUntilThen() =>
        Assert.Equal(TimeSpan.FromSeconds(3), IdempotencyKeyHandler.GetConflictDelay(new RetryConditionHeaderValue(Now.AddSeconds(3)), InProgress, true, Max, Now));

    [Fact]
    public void GetConflictDelay_DateInThePast_ResendsAtOnce() =>
        Assert.Equal(TimeSpan.Zero, IdempotencyKeyHandler.GetConflictDelay(new RetryConditionHeaderValue(Now.AddSeconds(-30)), InProgress, true, Max, Now));

    [Fact]
    public void GetConflictDelay_LongRetryAfter_IsCappedAtMaxRetryAfter() =>
        Assert.Equal(Max, IdempotencyKeyHandler.GetConflictDelay(new RetryConditionHeaderValue(TimeSpan.FromMinutes(10)), InProgress, true, Max, Now));

    [Fact]
    public void GetConflictDelay_InProgressWithoutRetryAfter_WaitsOneSecond() =>
        Assert.Equal(TimeSpan.FromSeconds(1), IdempotencyKeyHandler.GetConflictDelay(null, InProgress, true, Max, Now));

    [Fact]
    public void GetConflictDelay_InProgressWithoutRetryAfter_SmallerCapWins() =>
        Assert.Equal(TimeSpan.FromMilliseconds(100), IdempotencyKeyHandler.GetConflictDelay(null, InProgress, true, TimeSpan.FromMilliseconds(100), Now));

    [Fact]
    public void GetConflictDelay_KeyReused_NeverResends() =>
        Assert.Null(IdempotencyKeyHandler.GetConflictDelay(new RetryConditionHeaderValue(TimeSpan.FromSeconds(1)), Reused, true, Max, Now));

    [Theory]
    [InlineData(true, 1.0)]
    [InlineData(false, null)]
    public void GetConflictDelay_OtherConflictWithRetryAfter_FollowsOption(bool retryConflicts, double? expectedSeconds) =>
        Assert.Equal(
            expectedSeconds is null ? null : TimeSpan.FromSeconds(expectedSeconds.Value),
            IdempotencyKeyHandler.GetConflictDelay(new RetryConditionHeaderValue(TimeSpan.FromSeconds(1)), "https://example.com/problems/locked", retryConflicts, Max, Now));

    [Fact]
    public void GetConflictDelay_OtherConflictWithoutRetryAfter_NeverResends() =>
        Assert.Null(IdempotencyKeyHandler.GetConflictDelay(null, null, true, Max, Now));

    [Theory]
    [InlineData("abc", "\"abc\"")]
    [InlineData("a\"b", "\"a\\\"b\"")]
    [InlineData("a\\b", "\"a\\\\b\"")]
    public void Quote_ThenUnquote_RoundTrips(string key, string quoted)
    {
        Assert.Equal(quoted, IdempotencyKeyHandler.Quote(key));
        Assert.Equal(key, IdempotencyKeyHandler.Unquote(quoted));
    }

    [Theory]
    [InlineData("abc", true)]
    [InlineData("", false)]
    [InlineData("has space", false)]
    [InlineData("caf\u00e9", false)]
    public void IsValidKey_FollowsServerRules(string key, bool valid) =>
        Assert.Equal(valid, IdempotencyKeyHandler.IsValidKey(key));

    [Fact]
    public void IsValidKey_Over255Characters_IsInvalid() =>
        Assert.False(IdempotencyKeyHandler.IsValidKey(new string('a', 256)));
}
