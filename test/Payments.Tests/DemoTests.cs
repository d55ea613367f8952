using Payments.Demo;

namespace Payments.Tests;

public sealed class DemoTests
{
    [Fact]
    public async Task Demo_RetryStorm_WithIdempotencyChargesOncePerLogicalPayment()
    {
        using var output = new StringWriter();

        var report = await RetryStormDemo.RunAsync(output);

        Assert.True(report.Succeeded, output.ToString());
        Assert.Equal(7, report.Scenarios.Count); // 4 payment scenarios, 2 webhook scenarios, 1 message scenario
        Assert.All(report.Scenarios, s =>
        {
            Assert.Equal(s.ExpectedCharges, s.With.Charges);
            Assert.Equal(s.ExpectedMoved, s.With.Moved);
            Assert.Equal(0, s.With.Extra);
        });

        // The "without" column is the point of the demo: lost answers, double-clicks and reused keys charge twice.
        Assert.True(report.Scenarios.Sum(s => s.Without.Extra) > 0, output.ToString());
        Assert.True(report.WithLedger.IsBalanced);
        Assert.True(report.WithoutLedger.IsBalanced);
        Assert.Contains("| scenario", report.Table, StringComparison.Ordinal);

        // The message row: every payout delivered twice pays out twice without Oncely, once with it.
        var payouts = Assert.Single(report.Scenarios, s => s.Name == PayoutDemo.Name);
        Assert.Equal(PayoutDemo.Payouts, payouts.Without.Extra);
        Assert.Equal(PayoutDemo.Payouts * (PayoutDemo.Deliveries - 1), payouts.With.Replayed);
        Assert.Contains(report.Table, output.ToString(), StringComparison.Ordinal);
    }
}
