using Microsoft.Extensions.Compliance.Classification;
using Microsoft.Extensions.Compliance.Redaction;
using Microsoft.Extensions.DependencyInjection;

namespace Oncely.Tests.Redaction;

/// <summary>How Oncely's redaction composes with the application's (<c>AddRedaction</c>): card numbers are masked in every case.</summary>
public class IdempotencyRedactionTests
{
    private const string Key = "order-4242424242424242";

    [Fact]
    public void Default_NoRedactorProvider_CardNumbersMaskedRestKept()
    {
        var redaction = IdempotencyRedaction.Default;
        Assert.Equal("order-************4242", redaction.Key(Key));
        Assert.Equal("tenant-a", redaction.Tenant("tenant-a"));
        Assert.Equal("/cards/************1111/payments", redaction.Path("/cards/4111111111111111/payments"));
    }

    [Fact]
    public void AppMapsOncelyClassifications_AppRedactorAppliedAfterMasking()
    {
        using var services = new ServiceCollection()
            .AddRedaction(r => r.SetRedactor<ErasingRedactor>(OncelyTaxonomy.Tenant).SetRedactor<Upper>(OncelyTaxonomy.IdempotencyKey).SetRedactor<NullRedactor>(OncelyTaxonomy.Payload))
            .BuildServiceProvider();
        var redaction = new IdempotencyRedaction(services.GetRequiredService<IRedactorProvider>());
        Assert.Equal(string.Empty, redaction.Tenant("tenant-a"));
        Assert.Equal("ORDER-************4242", redaction.Key(Key));
        Assert.Equal("note ************4242", redaction.Payload("note 4242424242424242")); // a NullRedactor does not turn the masking off
    }

    [Fact]
    public void AppRegistersRedactionWithoutMappingOncely_FallbackRedactorApplies()
    {
        using var services = new ServiceCollection().AddRedaction().BuildServiceProvider();
        var redaction = new IdempotencyRedaction(services.GetRequiredService<IRedactorProvider>());
        Assert.Equal(string.Empty, redaction.Key(Key)); // the library's default fallback erases
    }

    [Fact]
    public void AppMapsAllToTheCardNumberRedactor_SameAsDefault()
    {
        using var services = new ServiceCollection().AddRedaction(r => r.SetRedactor<PrimaryAccountNumberRedactor>(OncelyTaxonomy.All)).BuildServiceProvider();
        var redaction = new IdempotencyRedaction(services.GetRequiredService<IRedactorProvider>());
        Assert.Equal("order-************4242", redaction.Key(Key));
        Assert.Equal("tenant-a", redaction.Tenant("tenant-a"));
    }

    [Fact]
    public void RecordIdToString_CardNumbersMasked()
        => Assert.Equal("t | POST /payments | order-************4242", new IdempotencyRecordId("t", "POST /payments", Key).ToString());

    [Fact]
    public void RedactedException_MessageWithCardNumber_StandInWithMaskedTextOtherwiseSameInstance()
    {
        var quoting = new TimeoutException($"Timeout performing EVALSHA, key: oncely:{{t}}:r:{Key}", new InvalidOperationException("inner 4111 1111 1111 1111"));
        var logged = IdempotencyRedaction.Exception(quoting);
        Assert.NotSame(quoting, logged);
        Assert.DoesNotContain("4242424242424242", logged.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("4111 1111 1111 1111", logged.ToString(), StringComparison.Ordinal);
        Assert.Contains("System.TimeoutException", logged.ToString(), StringComparison.Ordinal);
        Assert.Contains("order-************4242", logged.Message, StringComparison.Ordinal);

        var plain = new InvalidOperationException("connection refused");
        Assert.Same(plain, IdempotencyRedaction.Exception(plain));
    }

    [Fact]
    public void Taxonomy_NamesStable()
    {
        Assert.Equal(new DataClassification("Oncely", "IdempotencyKey"), OncelyTaxonomy.IdempotencyKey);
        Assert.Equal(4, OncelyTaxonomy.All.Length);
    }

    private sealed class Upper : Redactor
    {
        public override int GetRedactedLength(ReadOnlySpan<char> input) => input.Length;

        public override int Redact(ReadOnlySpan<char> source, Span<char> destination) => source.ToUpperInvariant(destination);
    }
}
